"""Connectors to the company's systems: mail, calendar and ERP, behind capability protocols."""
