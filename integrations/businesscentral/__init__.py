"""Dynamics 365 Business Central over its API v2.0 (OData v4, msal tokens)."""

from integrations.businesscentral.erp import (
    BC_SCOPE,
    ERP_SPEC,
    BusinessCentralConfig,
    BusinessCentralERPConnector,
    build_connector,
)

__all__ = [
    "BC_SCOPE",
    "ERP_SPEC",
    "BusinessCentralConfig",
    "BusinessCentralERPConnector",
    "build_connector",
]
