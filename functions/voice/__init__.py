"""POST /voice: the Sautikit voice webhook."""
