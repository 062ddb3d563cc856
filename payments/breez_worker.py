"""Infernet's Breez worker: the Breez SDK (Spark) behind a line protocol.

The server starts this process and talks to it over stdin/stdout, one JSON
object per line (see payments/src/breez.rs, which embeds this file):

  first line in:  {"init": {"network": "bitcoin|signet|regtest",
                            "api_key": str|null, "mnemonic": str,
                            "storage_dir": str}}
  first line out: {"ready": {"pubkey": str, "balance_sat": int}}
                  or {"fatal": str} (then the process exits 2)
  requests in:    {"id": int, "op": str, ...arguments}
  answers out:    {"id": int, "ok": {...}} or
                  {"id": int, "err": {"kind": str, "message": str}}
  events out:     {"event": "invoice_paid", "payment_hash": str,
                   "amount_msat": int}

Operations: get_info, create_invoice {amount_msat, description,
expiry_secs}, invoice_state {payment_hash}, pay_invoice {bolt11,
amount_msat?}, parse {input}. Error kinds: unreachable, invalid_invoice,
payment_failed, unknown_payment, backend. Secrets (the mnemonic, the API
key) arrive on stdin, never in arguments or the environment, and are never
printed. Payment state lives in the server's ledger: this worker keeps
none of its own beyond the SDK's storage.
"""

import asyncio
import json
import sys
import time
import uuid

# Longest any one SDK call may take before it is reported unreachable.
OP_TIMEOUT_SECS = 45
# How long a send may take to complete before it is reported pending.
SEND_TIMEOUT_SECS = 60
UNREACHABLE_MARKS = (
    "dns error",
    "connection error",
    "transport error",
    "unavailable",
    "failed to fetch",
    "timed out",
    "network",
)


def emit(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def classify(exc):
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if isinstance(exc, asyncio.TimeoutError) or any(m in lowered for m in UNREACHABLE_MARKS):
        return "unreachable", text
    name = type(exc).__name__.lower()
    if "invalidinput" in name or "invalid input" in lowered or "invalid invoice" in lowered:
        return "invalid_invoice", text
    return "backend", text


class Fail(Exception):
    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def bolt11_details(parsed):
    """The details of a parsed input that must be a BOLT11 invoice."""
    if not parsed.is_bolt11_invoice():
        raise Fail("invalid_invoice", "not a BOLT11 invoice")
    try:
        return parsed[0]
    except (TypeError, IndexError, KeyError):
        return parsed._values[0]


def lightning_details(payment):
    details = payment.details
    if details is None:
        return None
    if hasattr(details, "is_lightning") and details.is_lightning():
        return details
    return None


class Worker:
    def __init__(self, sdk_module, sdk):
        self.b = sdk_module
        self.sdk = sdk

    async def call(self, coro, timeout=OP_TIMEOUT_SECS):
        try:
            return await asyncio.wait_for(coro, timeout)
        except Fail:
            raise
        except Exception as exc:  # the SDK's errors, timeouts
            kind, message = classify(exc)
            raise Fail(kind, message)

    async def get_info(self, _req):
        info = await self.call(self.sdk.get_info(self.b.GetInfoRequest(ensure_synced=False)))
        return {"pubkey": info.identity_pubkey, "balance_sat": int(info.balance_sats)}

    async def create_invoice(self, req):
        amount_msat = int(req["amount_msat"])
        if amount_msat <= 0 or amount_msat % 1000:
            raise Fail("backend", "amounts are whole satoshis")
        method = self.b.ReceivePaymentMethod.BOLT11_INVOICE(
            description=str(req.get("description", ""))[:600],
            amount_sats=amount_msat // 1000,
            expiry_secs=int(req.get("expiry_secs", 3600)),
            payment_hash=None,
            receiver_identity_public_key=None,
        )
        resp = await self.call(
            self.sdk.receive_payment(self.b.ReceivePaymentRequest(payment_method=method))
        )
        bolt11 = resp.payment_request
        details = bolt11_details(await self.call(self.sdk.parse(bolt11)))
        return {
            "bolt11": bolt11,
            "payment_hash": details.payment_hash,
            "expires_at_ms": (int(details.timestamp) + int(details.expiry)) * 1000,
        }

    async def find_payment(self, payment_hash, payment_type):
        offset = 0
        while True:
            page = await self.call(
                self.sdk.list_payments(
                    self.b.ListPaymentsRequest(
                        type_filter=[payment_type], offset=offset, limit=200
                    )
                )
            )
            for payment in page.payments:
                details = lightning_details(payment)
                if details is not None and details.htlc_details.payment_hash == payment_hash:
                    return payment, details
            if len(page.payments) < 200:
                return None, None
            offset += 200

    async def invoice_state(self, req):
        payment, _ = await self.find_payment(req["payment_hash"], self.b.PaymentType.RECEIVE)
        if payment is None:
            return {"state": "pending"}
        if payment.status == self.b.PaymentStatus.COMPLETED:
            return {
                "state": "paid",
                "amount_msat": int(payment.amount) * 1000,
                "at_ms": int(payment.timestamp) * 1000,
            }
        if payment.status == self.b.PaymentStatus.FAILED:
            return {"state": "expired"}
        return {"state": "pending"}

    async def pay_invoice(self, req):
        bolt11 = req["bolt11"]
        amount_msat = req.get("amount_msat")
        amount = None
        if amount_msat is not None:
            if int(amount_msat) % 1000:
                raise Fail("invalid_invoice", "amounts are whole satoshis")
            amount = int(amount_msat) // 1000
        prepared = await self.call(
            self.sdk.prepare_send_payment(
                self.b.PrepareSendPaymentRequest(
                    payment_request=self.b.PaymentRequest.INPUT(input=bolt11), amount=amount
                )
            )
        )
        payment_hash = bolt11_details(await self.call(self.sdk.parse(bolt11))).payment_hash
        options = self.b.SendPaymentOptions.BOLT11_INVOICE(
            prefer_spark=False, completion_timeout_secs=SEND_TIMEOUT_SECS
        )
        # The same invoice is sent once, however often the server asks.
        key = str(uuid.uuid5(uuid.NAMESPACE_URL, "infernet-payout:" + payment_hash))
        resp = await self.call(
            self.sdk.send_payment(
                self.b.SendPaymentRequest(
                    prepare_response=prepared, options=options, idempotency_key=key
                )
            ),
            timeout=SEND_TIMEOUT_SECS + OP_TIMEOUT_SECS,
        )
        payment = resp.payment
        if payment.status == self.b.PaymentStatus.FAILED:
            raise Fail("payment_failed", "the payment failed")
        d = lightning_details(payment)
        preimage = d.htlc_details.preimage if d is not None else None
        if payment.status != self.b.PaymentStatus.COMPLETED or not preimage:
            raise Fail("backend", "the payment is still pending: ask again later")
        return {
            "payment_hash": payment_hash,
            "preimage": preimage,
            "amount_msat": int(payment.amount) * 1000,
            "fee_msat": int(payment.fees) * 1000,
        }

    async def parse(self, req):
        parsed = await self.call(self.sdk.parse(str(req["input"])))
        kind = next(
            (k.lower() for k in dir(parsed) if k.isupper() and getattr(parsed, "is_" + k)()),
            "unknown",
        )
        out = {"kind": kind}
        if kind == "bolt11_invoice":
            details = bolt11_details(parsed)
            out["payment_hash"] = details.payment_hash
            out["amount_msat"] = details.amount_msat
        return out


class Listener:
    def __init__(self, b):
        self.b = b

    async def on_event(self, event):
        try:
            if not event.is_payment_succeeded():
                return
            payment = event.payment
            if payment.payment_type != self.b.PaymentType.RECEIVE:
                return
            details = lightning_details(payment)
            if details is None:
                return
            emit(
                {
                    "event": "invoice_paid",
                    "payment_hash": details.htlc_details.payment_hash,
                    "amount_msat": int(payment.amount) * 1000,
                }
            )
        except Exception as exc:  # never let a listener error kill the SDK
            sys.stderr.write("event listener: %s\n" % exc)


async def connect(init):
    import breez_sdk_spark as b

    networks = {
        "bitcoin": b.Network.MAINNET,
        "signet": b.Network.SIGNET,
        "regtest": b.Network.REGTEST,
    }
    network = networks.get(init.get("network"))
    if network is None:
        raise Fail("backend", "unknown network %r" % init.get("network"))
    config = b.default_config(network)
    config.api_key = init.get("api_key")
    seed = b.Seed.MNEMONIC(mnemonic=init["mnemonic"], passphrase=None)
    sdk = await asyncio.wait_for(
        b.connect(
            b.ConnectRequest(config=config, seed=seed, storage_dir=init["storage_dir"])
        ),
        OP_TIMEOUT_SECS,
    )
    await sdk.add_event_listener(Listener(b))
    return b, sdk


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    first = await reader.readline()
    try:
        init = json.loads(first)["init"]
        b, sdk = await connect(init)
    except Exception as exc:
        kind, message = classify(exc) if not isinstance(exc, Fail) else (exc.kind, exc.message)
        emit({"fatal": "%s: %s" % (kind, message)})
        sys.exit(2)
    worker = Worker(b, sdk)
    started = time.time()
    try:
        info = await worker.get_info({})
    except Fail as exc:
        info = {"pubkey": None, "balance_sat": None, "warning": exc.message}
    info["connect_secs"] = round(time.time() - started, 3)
    emit({"ready": info})

    ops = {
        "get_info": worker.get_info,
        "create_invoice": worker.create_invoice,
        "invoice_state": worker.invoice_state,
        "pay_invoice": worker.pay_invoice,
        "parse": worker.parse,
    }

    async def serve(req):
        rid = req.get("id")
        op = ops.get(req.get("op"))
        if op is None:
            emit({"id": rid, "err": {"kind": "backend", "message": "unknown op"}})
            return
        try:
            emit({"id": rid, "ok": await op(req)})
        except Fail as exc:
            emit({"id": rid, "err": {"kind": exc.kind, "message": exc.message}})
        except Exception as exc:
            kind, message = classify(exc)
            emit({"id": rid, "err": {"kind": kind, "message": message}})

    tasks = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            req = json.loads(line)
        except ValueError:
            emit({"id": None, "err": {"kind": "backend", "message": "bad request line"}})
            continue
        task = asyncio.create_task(serve(req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    try:
        await asyncio.wait_for(sdk.disconnect(), 10)
    except Exception:
        pass


if __name__ == "__main__":
    asyncio.run(main())
