"""Gateway adapters. Each one maps its wire format and error codes onto ``worker.errors``."""
