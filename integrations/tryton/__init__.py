"""Tryton, the open-source ERP, over its JSON-RPC API."""

from integrations.tryton.client import TrytonClient
from integrations.tryton.erp import ERP_SPEC, TrytonConfig, TrytonERPConnector, build_connector

__all__ = ["ERP_SPEC", "TrytonClient", "TrytonConfig", "TrytonERPConnector", "build_connector"]
