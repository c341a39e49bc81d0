"""Calls an agent's web endpoint the way users do: with the official `openai` and `mcp`
Python SDKs. Prints one JSON object with what each client saw; the Rust test asserts on it.

Usage: serving_clients.py <base-url ending in /v1> <api-key>
"""

import asyncio
import json
import sys

import httpx2
import openai
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def chat(base_url: str, key: str) -> dict:
    # No retries: every request is an agent run; a retry would hide a failure and start another.
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
    out = {}
    whole = client.chat.completions.create(
        model="anything",
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "Which pods are crash-looping?"},
        ],
    )
    out["chat"] = {
        "id": whole.id,
        "object": whole.object,
        "model": whole.model,
        "content": whole.choices[0].message.content,
        "role": whole.choices[0].message.role,
        "finish_reason": whole.choices[0].finish_reason,
        "usage": whole.usage.model_dump() if whole.usage else None,
    }

    pieces, finish, usage, roles = [], None, None, []
    stream = client.chat.completions.create(
        model="anything",
        messages=[{"role": "user", "content": "Summarise the incident."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    out["stream"] = {"pieces": pieces, "content": "".join(pieces), "finish_reason": finish, "usage": usage, "roles": roles}

    models = client.models.list()
    out["models"] = [m.id for m in models.data]

    wrong = openai.OpenAI(base_url=base_url, api_key="sk-not-the-key", max_retries=0)
    try:
        wrong.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
        out["wrong_key"] = {"status": 200}
    except openai.AuthenticationError as e:
        out["wrong_key"] = {"status": e.status_code, "type": (e.body or {}).get("type") if isinstance(e.body, dict) else None}
    except openai.APIStatusError as e:
        out["wrong_key"] = {"status": e.status_code}
    return out


async def mcp_calls(base_url: str, key: str) -> dict:
    url = base_url.removesuffix("/v1") + "/mcp"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                init = await session.initialize()
                tools = await session.list_tools()
                result = await session.call_tool("ask_agent", {"task": "Is the payments service healthy?"})
                texts = [c.text for c in result.content if getattr(c, "type", None) == "text"]
                return {
                    "server": init.server_info.name if hasattr(init, "server_info") else init.serverInfo.name,
                    "tools": [t.name for t in tools.tools],
                    "schema_required": [t.input_schema.get("required") if hasattr(t, "input_schema") else t.inputSchema.get("required") for t in tools.tools],
                    "is_error": bool(getattr(result, "is_error", None) or getattr(result, "isError", None)),
                    "text": "".join(texts),
                }


def main() -> None:
    base_url, key = sys.argv[1], sys.argv[2]
    out = chat(base_url, key)
    out["mcp"] = asyncio.run(mcp_calls(base_url, key))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
