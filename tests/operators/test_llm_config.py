"""LLMConfig.from_dict: defaults, a full table from TOML, and one-line errors naming llm.KEY."""

from __future__ import annotations

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from operators.llm import FORMATS, LLMConfig, LLMConfigError, ModelSpec


def test_empty_table_is_valid_and_means_off():
    cfg = LLMConfig.from_dict({})
    assert not cfg.enabled
    assert cfg.format == "definitions" and cfg.api_key_env == "OPENAI_API_KEY"
    assert cfg.max_reply_chars == 200_000 and cfg.models == ()


def test_full_table_from_toml_round_trips_through_to_dict():
    table = tomllib.loads("""
        [llm]
        base_url = "http://localhost:8000/v1"
        models = [{name = "big", weight = 1, price_input = 3.0, price_output = 15.0},
                  {name = "small", weight = 3}]
        api_key_env = "MY_LLM_KEY"
        temperature = 0.2
        max_tokens = 2000
        timeout = 30
        retries = 2
        backoff = 0.5
        max_backoff = 10
        concurrency = 8
        format = "search_replace"
        ideas_first = true
        max_reply_chars = 50000
        inspirations = 3
    """)["llm"]
    cfg = LLMConfig.from_dict(table)
    assert cfg.enabled and cfg.timeout == 30.0 and cfg.ideas_first and cfg.concurrency == 8
    assert cfg.models == (ModelSpec("big", 1.0, 3.0, 15.0), ModelSpec("small", 3.0, 0.0, 0.0))
    assert cfg.model("big").cost(1_000_000, 1_000_000) == pytest.approx(18.0)
    assert LLMConfig.from_dict(cfg.to_dict()) == cfg


def test_plain_list_of_model_names():
    cfg = LLMConfig.from_dict(
        {"base_url": "https://api.openai.com/v1", "models": ["gpt-4.1-mini", "gpt-4.1"]}
    )
    assert [m.name for m in cfg.models] == ["gpt-4.1-mini", "gpt-4.1"]
    assert all(m.weight == 1.0 and m.price_input == 0.0 for m in cfg.models)


URL = {"base_url": "http://127.0.0.1:1/v1", "models": ["m"]}


@pytest.mark.parametrize(
    "table, key, allowed",
    [
        ({"base_ulr": "x"}, "llm.base_ulr", "allowed keys: base_url"),
        ({**URL, "format": "diff"}, "llm.format", ", ".join(FORMATS)),
        ({**URL, "temperature": 3}, "llm.temperature", "between 0.0 and 2.0"),
        ({**URL, "timeout": 0}, "llm.timeout", "> 0.001"),
        ({**URL, "retries": -1}, "llm.retries", ">= 0"),
        ({**URL, "concurrency": 0}, "llm.concurrency", ">= 1"),
        ({**URL, "max_tokens": 1.5}, "llm.max_tokens", "integer"),
        ({**URL, "ideas_first": "yes"}, "llm.ideas_first", "true or false"),
        ({"base_url": "http://x/v1"}, "llm.models", "at least one model"),
        ({"base_url": "localhost:8000", "models": ["m"]}, "llm.base_url", "http://"),
        ({**URL, "models": [{"name": "m", "weight": 0}]}, "llm.models[0].weight", "> 0.0"),
        ({**URL, "models": [{"name": "m", "price": 1}]}, "llm.models[0].price", "price_input"),
        ({**URL, "models": ["m", "m"]}, "llm.models[1].name", "twice"),
        ({**URL, "models": "m"}, "llm.models", "list"),
        ({**URL, "api_key_env": "sk-live-abc"}, "llm.api_key_env", "variable name"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(table, key, allowed):
    with pytest.raises(LLMConfigError) as err:
        LLMConfig.from_dict(table)
    msg = str(err.value)
    assert msg.startswith(key + ":") and allowed in msg and "\n" not in msg
    assert isinstance(err.value, ValueError)


def test_config_holds_the_variable_name_never_a_key(monkeypatch):
    monkeypatch.setenv("MY_LLM_KEY", "sk-secret-in-env")
    cfg = LLMConfig.from_dict({**URL, "api_key_env": "MY_LLM_KEY"})
    assert "sk-secret-in-env" not in repr(cfg) and "sk-secret-in-env" not in str(cfg.to_dict())
