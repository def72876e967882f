"""Authentication and authorization: tokens, issuers, passwords, API keys, sessions, roles.

Routers take the caller from :data:`assistant.api.deps.PrincipalDep` and check it with
``require(Permission.X)``; the role-permission matrix lives in :mod:`assistant.auth.permissions`.
"""
