"""The CareEpisode type takes a fixed set of patches as given; any other goes through Temporal's patching."""

from __future__ import annotations

from continuum.workflows.episode import EPISODE_WORKFLOW_TYPES, IN_FROM_THE_START, CareEpisodeWorkflow, EpisodeWorkflow


def test_the_patches_care_episode_takes_as_given_are_the_ones_it_began_with() -> None:
    # Adding an id here would make CareEpisode runs recorded before that change replay its new branch: a new
    # change gets a patch of its own instead (self._patched with a new id), and this set stays as it is.
    assert IN_FROM_THE_START == {
        "drug-testing",
        "aftercare-referrals",
        "treatment-plans",
        "authorizations",
        "bounded-replay",
        "facilities",
        "local-recording",
        "care-episode-type",
    }


def test_both_episode_types_are_named_as_temporal_knows_them() -> None:
    names = tuple(getattr(cls, "__temporal_workflow_definition").name for cls in (EpisodeWorkflow, CareEpisodeWorkflow))
    assert names == EPISODE_WORKFLOW_TYPES == ("EpisodeWorkflow", "CareEpisode")
