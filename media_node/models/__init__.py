"""Speech-to-speech model adapters behind one interface (`media_node.models.base`)."""
