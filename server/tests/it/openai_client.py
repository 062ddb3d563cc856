"""Drives the server's OpenAI-compatible API with the official `openai`
Python library, unchanged, and prints what it got as JSON for the Rust test
to check. Usage: openai_client.py <base-url> <api-key> <revoked-api-key>
<key-of-an-account-without-funds>"""

import json
import sys

import openai

client = openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[2], max_retries=0)
out = {"version": openai.__version__}

out["models"] = sorted(m.id for m in client.models.list())

emb = client.embeddings.create(model="all-minilm-l6-v2", input=["a cat", "a dog"])
out["embeddings"] = {
    "count": len(emb.data),
    "dim": len(emb.data[0].embedding),
    "first": emb.data[0].embedding[:4],
    "prompt_tokens": emb.usage.prompt_tokens,
}
emb_float = client.embeddings.create(
    model="all-minilm-l6-v2", input="a cat", encoding_format="float"
)
out["embeddings"]["float_first"] = emb_float.data[0].embedding[:4]

messages = [{"role": "user", "content": "tell me a story"}]
done = client.chat.completions.create(
    model="tiny-gpt2", messages=messages, max_tokens=12, temperature=0
)
out["chat"] = {
    "content": done.choices[0].message.content,
    "finish_reason": done.choices[0].finish_reason,
    "completion_tokens": done.usage.completion_tokens,
    "prompt_tokens": done.usage.prompt_tokens,
    "id": done.id,
}

pieces = []
finish = None
usage = None
stream = client.chat.completions.create(
    model="tiny-gpt2",
    messages=messages,
    max_tokens=12,
    temperature=0,
    stream=True,
    stream_options={"include_usage": True},
)
for chunk in stream:
    if chunk.usage is not None:
        usage = chunk.usage.completion_tokens
    for choice in chunk.choices:
        if choice.delta.content:
            pieces.append(choice.delta.content)
        if choice.finish_reason:
            finish = choice.finish_reason
out["stream"] = {"pieces": pieces, "finish_reason": finish, "completion_tokens": usage}

errors = {}
try:
    client.chat.completions.create(model="no-such-model", messages=messages)
except openai.NotFoundError as e:
    errors["unknown_model"] = {"status": e.status_code, "code": e.code, "type": e.type}
try:
    client.chat.completions.create(model="tiny-gpt2", messages=messages, temperature=5)
except openai.BadRequestError as e:
    errors["bad_temperature"] = {"status": e.status_code, "param": e.param, "type": e.type}
try:
    client.embeddings.create(model="tiny-gpt2", input="x")
except openai.BadRequestError as e:
    errors["wrong_task"] = {"status": e.status_code, "type": e.type}
out["errors"] = errors

# Without a key, with a made-up key, with a revoked key: the library's
# AuthenticationError, with OpenAI's code.
def strip_auth(request):
    request.headers.pop("Authorization", None)


auth = {}
for name, key, http_client in [
    # The library insists on a key; its transport drops the header.
    ("none", "sk-dropped", openai.DefaultHttpxClient(event_hooks={"request": [strip_auth]})),
    ("bad", "sk-inf-notarealkey", None),
    ("revoked", sys.argv[3], None),
]:
    try:
        openai.OpenAI(
            base_url=sys.argv[1], api_key=key, max_retries=0, http_client=http_client
        ).embeddings.create(model="all-minilm-l6-v2", input="x")
        auth[name] = "accepted"
    except openai.AuthenticationError as e:
        auth[name] = {"status": e.status_code, "code": e.code, "type": e.type}
out["auth"] = auth

# An account without funds: 402, OpenAI's insufficient_quota.
try:
    openai.OpenAI(base_url=sys.argv[1], api_key=sys.argv[4], max_retries=0).embeddings.create(
        model="all-minilm-l6-v2", input="x"
    )
    out["broke"] = "accepted"
except openai.APIStatusError as e:
    out["broke"] = {"status": e.status_code, "code": e.code, "type": e.type}

json.dump(out, sys.stdout)
