"""The custom search attributes episodes keep current, so `temporal workflow list --query` can filter them."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

EPISODE_LEVEL = SearchAttributeKey.for_keyword("ContinuumLevel")
EPISODE_STATUS = SearchAttributeKey.for_keyword("ContinuumStatus")

# name -> Temporal type, as `temporal server start-dev --search-attribute NAME=TYPE` takes them
SEARCH_ATTRIBUTES: dict[str, str] = {EPISODE_LEVEL.name: "Keyword", EPISODE_STATUS.name: "Keyword"}
