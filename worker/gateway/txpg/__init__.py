"""Kapital Bank's e-commerce gateway (TXPG): codes, typed models, request builders, clients."""
