"""The single declaration of every Branchline entity (no I/O, no third-party imports)."""

from .model import (
    HQ_SITE,
    Entity,
    Field,
    Kind,
    Policy,
    Rollup,
    Schema,
    Scope,
    StateMachine,
    Transition,
    Who,
    is_uuid,
)
from .retail import SCHEMA

__all__ = [
    "HQ_SITE",
    "SCHEMA",
    "Entity",
    "Field",
    "Kind",
    "Policy",
    "Rollup",
    "Schema",
    "Scope",
    "StateMachine",
    "Transition",
    "Who",
    "is_uuid",
]
