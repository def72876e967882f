"""ERP answers: read queries scoped by tenant and role, sender matching for triage, tools."""

from assistant.erp.context import ERPContext, extract_references, match_party
from assistant.erp.service import ERPReader, OverdueReport

__all__ = ["ERPContext", "ERPReader", "OverdueReport", "extract_references", "match_party"]
