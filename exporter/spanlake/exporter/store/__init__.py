"""Experiment stores: one interface (:class:`Store`), opened by URI (:func:`open_store`)."""

from spanlake.exporter.store.base import Store
from spanlake.exporter.store.uri import DEFAULT_STORE_URI, StoreURI, open_store, parse_store_uri

__all__ = ["DEFAULT_STORE_URI", "Store", "StoreURI", "open_store", "parse_store_uri"]
