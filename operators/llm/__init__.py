"""LLM mutation and crossover over any OpenAI-compatible endpoint.

Usage by the loop::

    config = LLMConfig.from_dict(toml_dict.get("llm", {}))
    budget = DollarBudget(run_dollars)               # shared, None = no limit
    client = make_client(config, budget)             # reads the API key, once
    ops = build_llm_operators(config, weights, client=client)
    child = op.propose(parents, context, rng)        # in a worker thread: op.slow is True
    client.usage()                                   # tokens, dollars, failures per model
"""

from operators.llm.client import (
    Completion,
    DollarBudget,
    LLMClient,
    LLMFailure,
    make_client,
)
from operators.llm.config import FORMATS, LLMConfig, LLMConfigError, ModelSpec
from operators.llm.edits import EditError, apply_reply, parse_idea
from operators.llm.operators import (
    LLMChild,
    LLMCrossover,
    LLMMutation,
    LLMNoChild,
    build_llm_operators,
    change_summary,
)
from operators.llm.prompts import crossover_messages, mutation_messages, niche_directive

__all__ = [
    "FORMATS",
    "Completion",
    "DollarBudget",
    "EditError",
    "LLMChild",
    "LLMClient",
    "LLMConfig",
    "LLMConfigError",
    "LLMCrossover",
    "LLMFailure",
    "LLMMutation",
    "LLMNoChild",
    "ModelSpec",
    "apply_reply",
    "build_llm_operators",
    "change_summary",
    "crossover_messages",
    "make_client",
    "mutation_messages",
    "niche_directive",
    "parse_idea",
]
