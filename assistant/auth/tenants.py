"""Which tenant a token belongs to, and which issuers each tenant trusts."""

from __future__ import annotations

from assistant.core.settings import Settings


class TenantDirectory:
    """Maps a token's ``tid`` to a tenant, and a tenant to its allowed issuers.

    Configured tenants (``auth.tenants``) map by their ``tid`` (default: their name). In local
    mode the built-in issuer is trusted for every tenant, and a ``tid`` it signed names the
    tenant directly (it signs only for users of its own database). In Entra mode only
    configured tenants exist.
    """

    def __init__(self, settings: Settings, local_issuer: str | None) -> None:
        self._settings = settings
        self.local_issuer = local_issuer
        self._by_tid: dict[str, str] = {}
        self._issuers: dict[str, frozenset[str]] = {}
        entra = settings.auth.entra
        for name, tenant in settings.auth.tenants.items():
            tid = tenant.tid or name
            self._by_tid[tid] = name
            issuers = set(tenant.allowed_issuers)
            if not issuers and settings.auth.mode == "entra":
                issuers.add(f"{entra.authority_host.rstrip('/')}/{tid}/v2.0")
            self._issuers[name] = frozenset(issuers)

    def tid_of(self, tenant_id: str) -> str:
        configured = self._settings.auth.tenants.get(tenant_id)
        return (configured.tid if configured and configured.tid else None) or tenant_id

    def tenant_for(self, tid: str, issuer: str) -> str | None:
        tenant = self._by_tid.get(tid)
        if tenant is None and self.local_issuer is not None and issuer == self.local_issuer:
            tenant = tid
        return tenant

    def allowed_issuers(self, tenant_id: str) -> frozenset[str]:
        issuers = set(self._issuers.get(tenant_id, frozenset()))
        if self.local_issuer is not None:
            issuers.add(self.local_issuer)
        return frozenset(issuers)

    def trusted_issuers(self) -> frozenset[str]:
        """Every issuer whose keys may be fetched: never one named only by a token."""
        issuers = {issuer for group in self._issuers.values() for issuer in group}
        if self.local_issuer is not None:
            issuers.add(self.local_issuer)
        return frozenset(issuers)
