"""The one composition root: builds the store, activities, worker, client and app from one Settings."""
