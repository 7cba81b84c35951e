"""Continuum's composition layer: settings, logging, embedded servers and the `continuum` command."""
