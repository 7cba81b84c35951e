"""The clinical domain: levels of care, episodes, events and the pure rules over them. No I/O here."""
