"""Settings, logging, the embedded servers and the Temporal connection: what every process needs to run."""
