"""Consul registration for NER worker instances: register, drain, deregister, re-register."""

from registrar.config import ConfigError, RegistrarConfig, load_config
from registrar.identity import new_instance_id
from registrar.registration import Registrar
from registrar.resync import Resync

__all__ = ["ConfigError", "RegistrarConfig", "Registrar", "Resync", "load_config", "new_instance_id"]
