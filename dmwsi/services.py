"""The server's shared services, built once and handed to every handler:
configuration, the store, and (as they are built) the DM engine, notifiers
and the push outbox."""
import logging

from dmwsi.store import open_store

log = logging.getLogger(__name__)


class Services:
    def __init__(self, config, store, reactor=None):
        self.config = config
        self.store = store
        self.reactor = reactor

    @classmethod
    def open(cls, config, reactor=None):
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(config.data_path(config["store"]["path"]))
        return cls(config, store, reactor)

    def close(self):
        self.store.close()
