"""Response shapes shared by every router: the error bodies the API answers."""

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    """Every error: ``{"error": ClassName, "detail": ..., "correlation_id": ...}``.

    Some errors add fields of their own (``problems``, ``errors``...), hence open."""

    error: str = Field(description="The error's class name, stable for clients to match.")
    detail: str = Field(description="What went wrong, for people.")
    correlation_id: str | None = Field(
        default=None, description="Quote it to the operators; also in X-Correlation-ID."
    )

    model_config = {"extra": "allow"}


class ProblemOut(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then names.")
    msg: str
    type: str


class ValidationErrorOut(ErrorOut):
    """422: the request is malformed; ``errors`` lists every problem (absent when the body
    was refused before parsing, for instance JSON nested too deep)."""

    errors: list[ProblemOut] = Field(default_factory=list)
