"""Drives a running Switchyard gateway with the official SDKs, unchanged but for the base URL.

Environment: SWITCHYARD_BASE_URL (…/api/v1), SWITCHYARD_INFERENCE_KEY, SWITCHYARD_MANAGEMENT_KEY,
and SWITCHYARD_MOCK_A_URL / SWITCHYARD_MOCK_B_URL (the mock providers, to script an outage).
Prints one line per check and a closing "N passed, M failed"; exits non-zero on any failure.
"""

import base64
import os
import sys
import time
import traceback

import anthropic
import openai
from openrouter import OpenRouter, errors

BASE = os.environ["SWITCHYARD_BASE_URL"]
INFERENCE = os.environ["SWITCHYARD_INFERENCE_KEY"]
MANAGEMENT = os.environ["SWITCHYARD_MANAGEMENT_KEY"]
MOCK_A = os.environ["SWITCHYARD_MOCK_A_URL"]
MOCK_B = os.environ["SWITCHYARD_MOCK_B_URL"]
MODEL = "mock/fast"
MESSAGES = [{"role": "user", "content": "Say hello"}]

passed, failed = 0, 0


def check(name):
    def run(fn):
        global passed, failed
        try:
            fn()
            passed += 1
            print(f"PASS {name}")
        except Exception:  # noqa: BLE001 - report every failure and keep going
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
        return fn

    return run


oa = openai.OpenAI(base_url=BASE, api_key=INFERENCE, max_retries=0)
# Anthropic's SDK appends /v1/messages to its base URL, as with OpenRouter (…/api).
ANTHROPIC_BASE = BASE.removesuffix("/v1")
claude = anthropic.Anthropic(base_url=ANTHROPIC_BASE, api_key=INFERENCE, max_retries=0)
TOOLS = [{"type": "function", "function": {"name": "weather", "description": "Weather now",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
# retries=None on every call below: the SDK otherwise retries 5xx for up to an hour.
inference = OpenRouter(api_key=INFERENCE, server_url=BASE)
management = OpenRouter(api_key=MANAGEMENT, server_url=BASE)


def wait_for_generation(gen_id):
    deadline = time.time() + 15
    while True:
        try:
            return inference.generations.get_generation(id=gen_id, retries=None)
        except errors.NotFoundResponseError:
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def gone(read, what):
    """Deletion is proven by a read that answers 404, not by a response field the SDK defaults."""
    try:
        read()
    except errors.NotFoundResponseError:
        return
    raise AssertionError(f"deleted {what} still found")


@check("openai: chat non-stream")
def _():
    r = oa.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.id.startswith("gen-"), r.id
    assert r.choices[0].message.content
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.model_extra["cost"] > 0


@check("openai: chat stream with usage")
def _():
    chunks = list(
        oa.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("tok"), text
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0
    assert usage.model_extra["cost"] > 0


@check("openai: models.list")
def _():
    ids = [m.id for m in oa.models.list()]
    assert MODEL in ids, ids


@check("openai: bad key raises AuthenticationError")
def _():
    bad = openai.OpenAI(base_url=BASE, api_key="sk-sy-v1-wrong", max_retries=0)
    try:
        bad.chat.completions.create(model=MODEL, messages=MESSAGES)
    except openai.AuthenticationError as e:
        assert e.status_code == 401
    else:
        raise AssertionError("expected 401")


@check("openrouter: chat.send non-stream and generation lookup")
def _():
    r = inference.chat.send(model=MODEL, messages=MESSAGES, retries=None)
    assert r.id.startswith("gen-")
    assert r.usage.cost > 0 and r.usage.is_byok is False
    g = wait_for_generation(r.id).data
    assert g.id == r.id and g.model == MODEL
    assert g.tokens_prompt == r.usage.prompt_tokens
    assert g.tokens_completion == r.usage.completion_tokens
    assert abs(g.total_cost - r.usage.cost) < 1e-12
    assert g.streamed is False


@check("openrouter: chat.send stream")
def _():
    chunks = list(
        inference.chat.send(
            model=MODEL,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            retries=None,
        )
    )
    assert all(c.id == chunks[0].id for c in chunks)
    final = chunks[-1]
    assert final.usage is not None and final.usage.cost > 0
    g = wait_for_generation(final.id).data
    assert g.streamed is True


@check("openrouter: models.list")
def _():
    r = inference.models.list(retries=None)
    ids = [m.id for m in r.result.data]
    assert MODEL in ids and r.result.total_count == len(ids)
    fast = next(m for m in r.result.data if m.id == MODEL)
    assert fast.pricing.prompt == "0.00000015"


@check("openrouter: api_keys create/get/list/update/delete and get_current_key_metadata")
def _():
    created = management.api_keys.create(name="sdk", limit=2.5, limit_reset="weekly", retries=None)
    secret, key_hash = created.key, created.data.hash
    assert secret.startswith("sk-sy-v1-") and created.data.limit == 2.5
    # Before the update removes the limit: the key's budget layers, as the SDK types them.
    limited = OpenRouter(api_key=secret, server_url=BASE).api_keys.get_current_key_metadata(retries=None)
    assert [b.scope for b in limited.data.budgets] == ["key_limit"]
    assert limited.data.effective_budget.reset_interval == "weekly"
    assert limited.data.effective_budget.remaining_usd == 2.5
    assert management.api_keys.get(hash=key_hash, retries=None).data.name == "sdk"
    assert key_hash in [k.hash for k in management.api_keys.list(retries=None).data]
    updated = management.api_keys.update(hash=key_hash, name="sdk-renamed", limit=None, retries=None)
    assert updated.data.name == "sdk-renamed" and updated.data.limit is None
    me = OpenRouter(api_key=secret, server_url=BASE).api_keys.get_current_key_metadata(retries=None)
    assert me.data.is_management_key is False
    management.api_keys.delete(hash=key_hash, retries=None)
    gone(lambda: management.api_keys.get(hash=key_hash, retries=None), "key")


@check("openrouter: inference key cannot manage")
def _():
    try:
        inference.api_keys.create(name="nope", retries=None)
    except errors.ForbiddenResponseError as e:
        assert e.data.error.code == 403
    else:
        raise AssertionError("expected 403")


@check("openrouter: unknown model is a typed 400")
def _():
    try:
        inference.chat.send(model="nope/nope", messages=MESSAGES, retries=None)
    except errors.BadRequestResponseError as e:
        assert "nope/nope" in e.data.error.message
    else:
        raise AssertionError("expected 400")


@check("openrouter: organization list_members, get_settings, update_settings")
def _():
    members = management.organization.list_members(retries=None)
    assert members.result.total_count >= 1
    assert members.result.data[0].role == "org:admin"
    settings = management.organization.get_settings(retries=None)
    assert settings.data.is_filtered_model_catalog_enabled is False
    updated = management.organization.update_settings(is_filtered_model_catalog_enabled=True, retries=None)
    assert updated.data.is_filtered_model_catalog_enabled is True
    management.organization.update_settings(is_filtered_model_catalog_enabled=False, retries=None)


@check("openrouter: credits.get_credits")
def _():
    r = management.credits.get_credits(retries=None)
    assert r.data.total_credits >= 0 and r.data.total_usage >= 0


@check("openrouter: workspaces create/get/list/update/members/budgets/delete")
def _():
    created = management.workspaces.create(name="SDK team", slug="sdk-team", description="from the SDK", retries=None)
    ws = created.data
    assert ws.slug == "sdk-team"
    assert management.workspaces.get(id=ws.id, retries=None).data.name == "SDK team"
    listed = management.workspaces.list(retries=None)
    assert ws.id in [w.id for w in listed.result.data]
    updated = management.workspaces.update(id=ws.id, name="SDK team 2", retries=None)
    assert updated.data.name == "SDK team 2"
    me = management.organization.list_members(retries=None).result.data[0].id
    added = management.workspaces.bulk_add_members(id=ws.id, user_ids=[me], retries=None)
    assert added.added_count in (0, 1)
    members = management.workspaces.list_members(id=ws.id, retries=None)
    assert me in [m.user_id for m in members.result.data]
    budget = management.workspaces.set_budget(workspace_ref=ws.id, interval="monthly", limit_usd=12.5, retries=None)
    assert budget.data.limit_usd == 12.5
    assert management.workspaces.get_budget(workspace_ref=ws.id, interval="monthly", retries=None).data.limit_usd == 12.5
    assert len(management.workspaces.list_budgets(workspace_ref=ws.id, retries=None).data) == 1
    management.workspaces.delete_budget(workspace_ref=ws.id, interval="monthly", retries=None)
    management.workspaces.bulk_remove_members(id=ws.id, user_ids=[me], retries=None)
    management.workspaces.delete(id=ws.id, retries=None)
    # The SDK's `deleted` defaults to true whatever the body says: read the workspace back.
    gone(lambda: management.workspaces.get(id=ws.id, retries=None), "workspace")


@check("openrouter: guardrails create/get/list/update/assignments/delete")
def _():
    created = management.guardrails.create(
        name="SDK rail", limit_usd=25, reset_interval="monthly", allowed_models=[MODEL],
        enforce_zdr_anthropic=True, retries=None,
    )
    g = created.data
    assert g.limit_usd == 25 and g.reset_interval == "monthly" and g.allowed_models == [MODEL]
    assert management.guardrails.get(id=g.id, retries=None).data.name == "SDK rail"
    listed = management.guardrails.list(retries=None)
    assert g.id in [x.id for x in listed.result.data]
    workspace = management.workspaces.list(retries=None).result.data[0]
    assert workspace.default_guardrail_id in [x.id for x in listed.result.data]
    updated = management.guardrails.update(id=g.id, description="from the SDK", ignored_providers=None, retries=None)
    assert updated.data.description == "from the SDK"
    keys = management.api_keys.list(retries=None).data
    assigned = management.guardrails.bulk_assign_keys(id=g.id, key_hashes=[keys[0].hash], retries=None)
    assert assigned.assigned_count == 1
    assert keys[0].hash in [a.key_hash for a in management.guardrails.list_guardrail_key_assignments(id=g.id, retries=None).result.data]
    assert management.guardrails.list_key_assignments(retries=None).result.total_count >= 1
    assert management.guardrails.bulk_unassign_keys(id=g.id, key_hashes=[keys[0].hash], retries=None).unassigned_count == 1
    me = management.organization.list_members(retries=None).result.data[0].id
    assert management.guardrails.bulk_assign_members(id=g.id, member_user_ids=[me], retries=None).assigned_count == 1
    members = management.guardrails.list_guardrail_member_assignments(id=g.id, retries=None).result.data
    assert [m.user_id for m in members] == [me]
    assert management.guardrails.list_member_assignments(retries=None).result.total_count >= 1
    assert management.guardrails.bulk_unassign_members(id=g.id, member_user_ids=[me], retries=None).unassigned_count == 1
    management.guardrails.delete(id=g.id, retries=None)
    gone(lambda: management.guardrails.get(id=g.id, retries=None), "guardrail")


@check("openrouter: presets list/get/list_versions/get_version")
def _():
    import httpx

    r = httpx.post(
        f"{BASE}/presets",
        headers={"Authorization": f"Bearer {MANAGEMENT}"},
        json={"slug": "sdk-preset", "name": "SDK preset", "config": {"model": MODEL}, "system_prompt": "Be brief."},
    )
    assert r.status_code in (200, 201), r.text
    listed = management.presets.list(retries=None)
    assert "sdk-preset" in [p.slug for p in listed.result.data]
    got = management.presets.get(slug="sdk-preset", retries=None)
    assert got.data.designated_version is not None
    versions = management.presets.list_versions(slug="sdk-preset", retries=None)
    assert versions.result.data[0].version == 1
    v = management.presets.get_version(slug="sdk-preset", version="1", retries=None)
    assert v.data.system_prompt == "Be brief."


@check("openrouter: byok create/get/list/update/delete never returns the secret")
def _():
    secret = "sk-test-byok-0123456789abcdef"
    created = management.byok.create(provider="openai", key=secret, name="sdk byok", retries=None)
    assert secret not in created.model_dump_json()
    byok_id = created.data.id
    assert management.byok.get(id=byok_id, retries=None).data.provider == "openai"
    assert byok_id in [k.id for k in management.byok.list(retries=None).result.data]
    updated = management.byok.update(id=byok_id, disabled=True, retries=None)
    assert updated.data.disabled is True
    assert secret not in updated.model_dump_json()
    management.byok.delete(id=byok_id, retries=None)
    gone(lambda: management.byok.get(id=byok_id, retries=None), "BYOK credential")


@check("openrouter: providers.list")
def _():
    r = management.providers.list(retries=None)
    assert len(r.data) >= 1 and r.data[0].slug


def script_mock(url, script):
    import httpx

    r = httpx.post(f"{url}/__mock/script", json=script)
    assert r.status_code == 200, r.text


def eventually(fn, what, limit=15):
    deadline = time.time() + limit
    while True:
        try:
            return fn()
        except Exception:  # noqa: BLE001 - configuration reaches the dataplane shortly after a write
            if time.time() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.05)


@check("openai: provider preferences through extra_body (order, only, zdr, max_price, sort)")
def _():
    for provider, served_by in [
        ({"order": ["mock-b"]}, "Mock B"),
        ({"only": ["mock-b"]}, "Mock B"),
        ({"zdr": True}, "Mock B"),
        ({"data_collection": "deny", "allow_fallbacks": False}, "Mock B"),
        ({"max_price": {"prompt": 0.16, "completion": 1}}, "Mock A"),
        ({"sort": "price", "quantizations": ["fp8", "bf16"]}, "Mock A"),
    ]:
        r = oa.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={"provider": provider})
        assert r.model_extra["provider"] == served_by, (provider, r.model_extra["provider"])


@check("openrouter: chat.send provider preferences, and a typed 404 naming why nothing qualifies")
def _():
    r = inference.chat.send(model=MODEL, messages=MESSAGES, provider={"order": ["mock-b"]}, retries=None)
    assert wait_for_generation(r.id).data.provider_name == "Mock B"
    try:
        inference.chat.send(model=MODEL, messages=MESSAGES, provider={"only": ["nobody"]}, retries=None)
    except errors.NotFoundResponseError as e:
        assert e.data.error.code == 404 and "only" in e.data.error.message
    else:
        raise AssertionError("expected 404")


@check("openrouter: model fallbacks under an outage, with every attempt in the generation")
def _():
    script_mock(MOCK_A, {"outage": True})
    try:
        r = inference.chat.send(models=["mock/free", "mock/fast"], messages=MESSAGES, retries=None)
        assert r.model == "mock/fast", r.model
        g = wait_for_generation(r.id).data
        assert g.provider_name == "Mock B"
        assert [a.status for a in g.provider_responses] == [503, 503, 200]
        o = oa.chat.completions.create(model="mock/free", messages=MESSAGES, extra_body={"models": ["mock/fast"]})
        assert o.model == "mock/fast"
    finally:
        script_mock(MOCK_A, {})


@check("openrouter: presets in requests (@preset/slug, model@preset/slug, preset, /presets/slug/chat/completions)")
def _():
    import httpx

    r = httpx.post(
        f"{BASE}/presets",
        headers={"Authorization": f"Bearer {MANAGEMENT}"},
        json={
            "slug": "sdk-route",
            "name": "SDK routing preset",
            "config": {"model": "mock/smart", "provider": {"order": ["mock-a"]}},
        },
    )
    assert r.status_code in (200, 201), r.text
    first = eventually(
        lambda: inference.chat.send(model="@preset/sdk-route", messages=MESSAGES, retries=None),
        "the preset at the dataplane",
    )
    assert first.model == "mock/smart"
    g = wait_for_generation(first.id).data
    assert g.provider_name == "Mock A" and g.preset_id
    assert inference.chat.send(model="mock/fast@preset/sdk-route", messages=MESSAGES, retries=None).model == MODEL
    assert oa.chat.completions.create(model=MODEL, messages=MESSAGES, extra_body={"preset": "sdk-route"}).model == MODEL
    preset_client = openai.OpenAI(base_url=f"{BASE}/presets/sdk-route", api_key=INFERENCE, max_retries=0)
    assert preset_client.chat.completions.create(model="", messages=MESSAGES).model == "mock/smart"


@check("openrouter: endpoints.list and list_zdr_endpoints report the catalogue's traits")
def _():
    r = inference.endpoints.list(author="mock", slug="fast", retries=None)
    tags = [(e.tag, e.quantization) for e in r.data.endpoints]
    assert tags == [("mock-a", "fp8"), ("mock-b", "bf16")], tags
    zdr = inference.endpoints.list_zdr_endpoints(retries=None)
    assert sorted((e.model_id, e.tag) for e in zdr.data) == [("mock/fast", "mock-b"), ("mock/smart", "mock-b")]


@check("openai: Anthropic- and Gemini-format models answer chat completions, tools and streams")
def _():
    for model in ["mock/claude", "mock/gemini"]:
        r = oa.chat.completions.create(model=model, messages=MESSAGES, max_tokens=50)
        assert r.choices[0].message.content.startswith("tok"), r
        assert r.usage.model_extra["cost"] > 0
        assert "cache_write_tokens" in r.usage.prompt_tokens_details.model_dump(), r.usage
        r = oa.chat.completions.create(model=model, messages=MESSAGES, tools=TOOLS, tool_choice="required")
        call = r.choices[0].message.tool_calls[0]
        assert r.choices[0].finish_reason == "tool_calls" and call.function.name == "weather", r
        chunks = list(oa.chat.completions.create(model=model, messages=MESSAGES, stream=True,
                                                 stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.startswith("tok"), text
        assert chunks[-1].usage.completion_tokens > 0


@check("openai: responses.create and responses.stream on every provider format")
def _():
    for model in [MODEL, "mock/claude", "mock/gemini"]:
        r = oa.responses.create(model=model, input="Say hello", instructions="Be brief.",
                                max_output_tokens=50)
        assert r.status in ("completed", "incomplete"), r.status
        assert r.output_text.startswith("tok"), r
        assert r.usage.output_tokens > 0 and r.usage.model_extra["cost"] > 0, r.usage
        assert r.id.startswith("gen-"), r.id
        with oa.responses.stream(model=model, input="Say hello") as stream:
            text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
            final = stream.get_final_response()
        assert text.startswith("tok"), text
        assert final.output_text == text and final.usage.output_tokens > 0, final


@check("openai: a Responses tool loop, and what a stateless gateway refuses")
def _():
    tools = [{"type": "function", "name": "weather", "description": "Weather now",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    r = oa.responses.create(model="mock/claude", input="Weather in Paris?", tools=tools,
                            tool_choice="required")
    call = next(o for o in r.output if o.type == "function_call")
    assert call.name == "weather", call
    r = oa.responses.create(model="mock/claude", tools=tools, input=[
        {"role": "user", "content": "Weather in Paris?"},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C"},
    ])
    assert r.output_text.startswith("tok"), r
    try:
        oa.responses.create(model=MODEL, input="again", previous_response_id=r.id)
    except openai.BadRequestError as e:
        assert "previous_response_id" in str(e), e
    else:
        raise AssertionError("expected 400")


@check("openai and openrouter: embeddings, priced and recorded")
def _():
    r = oa.embeddings.create(model="mock/embed", input=["first text", "second text"], dimensions=16)
    assert [d.index for d in r.data] == [0, 1], r
    assert len(r.data[0].embedding) == 16
    assert r.usage.prompt_tokens > 0 and r.usage.model_extra["cost"] > 0, r.usage
    b64 = oa.embeddings.create(model="mock/embed", input="first text", encoding_format="base64")
    # Asked for explicitly, the vector stays base64: 8 little-endian f32.
    assert len(base64.b64decode(b64.data[0].embedding)) == 32, b64
    e = inference.embeddings.generate(model="mock/embed", input="first text", retries=None)
    assert e.data[0].embedding and e.usage.cost > 0, e
    wait_for_generation(e.id)


@check("openrouter: rerank echoes documents, priced")
def _():
    r = inference.rerank.rerank(model="mock/rerank", query="red apple",
                                documents=["a blue sky", "a red apple"], retries=None)
    assert r.results[0].index == 1 and r.results[0].document.text == "a red apple", r
    assert r.usage.cost > 0, r.usage


@check("openai: legacy completions, whole and streamed")
def _():
    r = oa.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5)
    assert r.object == "text_completion" and r.choices[0].text.startswith("tok"), r
    assert r.usage.completion_tokens == 5, r.usage
    text = "".join(c.choices[0].text for c in oa.completions.create(
        model="mock/claude", prompt="Once upon a time", max_tokens=5, stream=True) if c.choices)
    assert text.startswith("tok"), text


@check("anthropic: messages.create on Anthropic- and OpenAI-format models")
def _():
    for model in ["mock/claude", MODEL]:
        m = claude.messages.create(model=model, max_tokens=64, system="Be brief.",
                                   messages=[{"role": "user", "content": "Say hello"}])
        assert m.type == "message" and m.role == "assistant", m
        assert m.content[0].type == "text" and m.content[0].text.startswith("tok"), m
        assert m.stop_reason in ("end_turn", "max_tokens"), m.stop_reason
        assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0, m.usage
        assert m.id.startswith("gen-"), m.id


@check("anthropic: messages.stream yields text and the final usage")
def _():
    with claude.messages.stream(model="mock/claude", max_tokens=64,
                                messages=[{"role": "user", "content": "Say hello"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text.startswith("tok"), text
    assert final.usage.output_tokens > 0, final.usage
    assert final.stop_reason == "end_turn", final.stop_reason


@check("anthropic: a tool loop with extended thinking")
def _():
    tools = [{"name": "weather", "description": "Weather now",
              "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    m = claude.messages.create(model="mock/claude", max_tokens=4000, tools=tools,
                               thinking={"type": "enabled", "budget_tokens": 2000}, messages=messages)
    kinds = [b.type for b in m.content]
    assert kinds == ["thinking", "tool_use"], kinds
    assert m.stop_reason == "tool_use"
    use = m.content[1]
    messages += [{"role": "assistant", "content": m.content},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C"}]}]
    m = claude.messages.create(model="mock/claude", max_tokens=4000, tools=tools,
                               thinking={"type": "enabled", "budget_tokens": 2000}, messages=messages)
    assert m.content[-1].type == "text", m.content


@check("anthropic: a bad key raises AuthenticationError")
def _():
    bad = anthropic.Anthropic(base_url=ANTHROPIC_BASE, api_key="sk-sy-v1-wrong", max_retries=0)
    try:
        bad.messages.create(model="mock/claude", max_tokens=8, messages=MESSAGES)
    except anthropic.AuthenticationError as e:
        assert e.status_code == 401
        assert e.body["error"]["type"] == "authentication_error", e.body
    else:
        raise AssertionError("expected 401")


@check("openrouter: user, session and app headers land on the generation")
def _():
    tracked = OpenRouter(api_key=INFERENCE, server_url=BASE, http_referer="https://app.example",
                         x_open_router_title="Conformance")
    r = tracked.chat.send(model=MODEL, messages=MESSAGES, user="sdk-user-1",
                          session_id="sdk-session-1", retries=None)
    g = wait_for_generation(r.id).data
    assert (g.external_user, g.session_id) == ("sdk-user-1", "sdk-session-1"), g
    assert g.http_referer == "https://app.example", g.http_referer


@check("openrouter: analytics.get_user_activity")
def _():
    # The last 30 completed UTC days: today's requests are not in it yet; the schema is checked.
    r = management.analytics.get_user_activity(retries=None)
    assert isinstance(r.data, list)
    r = management.analytics.get_user_activity(request={"group_by": "workspace"}, retries=None)
    assert all(item.workspace_id for item in r.data)
    try:
        management.analytics.get_user_activity(request={"date_": "not-a-date"}, retries=None)
    except errors.BadRequestResponseError:
        pass
    else:
        raise AssertionError("expected 400")


@check("openrouter: analytics.get_analytics_meta and query_analytics")
def _():
    meta = management.analytics.get_analytics_meta(retries=None).data
    metrics = {m.name for m in meta.metrics}
    assert {"requests", "usage"} <= metrics, metrics
    assert "day" in {g.name for g in meta.granularities}
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 86400))

    def query(model):
        return management.analytics.query_analytics(
            metrics=["requests", "usage"], dimensions=["model"], granularity="hour",
            filters=[{"field": "model", "operator": "eq", "value": model}],
            time_range={"start": start, "end": end}, retries=None).data

    # The SDK's row model keeps no fields (the values are checked over plain HTTP in
    # controlplane/tests/activity.rs): here, that rows come back and the filter applies.
    def counted():
        r = query(MODEL)
        assert r.data and r.metadata.row_count == len(r.data), r
    eventually(counted, "today's requests in the hourly analytics")
    assert query("nobody/none").metadata.row_count == 0


@check("openrouter: external_users list/create/get/update/delete")
def _():
    def registered():
        page = management.external_users.list(user="sdk-user-1", retries=None).result
        assert page.total_count == 1, page
        return page
    page = eventually(registered, "the request's user registered")
    assert page.data[0].user == "sdk-user-1" and page.data[0].is_active
    created = management.external_users.create(user="sdk-user-2", retries=None)
    assert created.data.user == "sdk-user-2"
    try:
        management.external_users.create(user="sdk-user-2", retries=None)
    except errors.ConflictResponseError:
        pass
    else:
        raise AssertionError("expected 409")
    updated = management.external_users.update(user="sdk-user-2", is_active=False, retries=None)
    assert updated.data.is_active is False
    assert management.external_users.get(user="sdk-user-2", retries=None).data.is_active is False
    management.external_users.delete(user="sdk-user-2", retries=None)
    gone(lambda: management.external_users.get(user="sdk-user-2", retries=None), "external user")


print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
