"""A small bank API, the service the README's ``Bank`` model describes: deposits (keyed by
``Idempotency-Key``), withdrawals that never overdraw, and the balance.

    POST /accounts/{account}/deposits     {"amount": n}  -> 201 {"balance": b}
    POST /accounts/{account}/withdrawals  {"amount": n}  -> 201 {"balance": b} | 409
    GET  /accounts/{account}                              -> 200 {"balance": b}

Bugs, each switched on by name: ``withdraw-rejects-whole-balance`` (a withdrawal of exactly
the balance is refused: ``<`` where ``<=`` was meant), ``deposit-key-ignored`` (a deposit
delivered twice is credited twice) and ``race-overdraw`` (the balance is read, the core
banking system asked, then written: two withdrawals at once both pass).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BUGS = ("withdraw-rejects-whole-balance", "deposit-key-ignored", "race-overdraw")


def create_app(*bugs: str) -> Starlette:
    unknown = set(bugs) - set(BUGS)
    assert not unknown, unknown
    balances: dict[str, int] = defaultdict(int)
    answered: dict[tuple[str, str], dict[str, Any]] = {}

    async def amount_of(request: Request) -> int | None:
        try:
            amount = json.loads(await request.body())["amount"]
        except (ValueError, KeyError, TypeError):
            return None
        return amount if isinstance(amount, int) and amount > 0 else None

    async def deposit(request: Request) -> JSONResponse:
        account = request.path_params["account"]
        amount = await amount_of(request)
        if amount is None:
            return JSONResponse({"error": "bad_amount"}, status_code=422)
        key = (account, request.headers.get("idempotency-key", ""))
        if key[1] and key in answered and "deposit-key-ignored" not in bugs:
            return JSONResponse(answered[key], status_code=201)
        balances[account] += amount
        answered[key] = {"balance": balances[account]}
        return JSONResponse(answered[key], status_code=201)

    async def withdraw(request: Request) -> JSONResponse:
        account = request.path_params["account"]
        amount = await amount_of(request)
        if amount is None:
            return JSONResponse({"error": "bad_amount"}, status_code=422)
        balance = balances[account]
        if "race-overdraw" in bugs:
            await asyncio.sleep(0.02)  # "the core banking system"
        fits = amount < balance if "withdraw-rejects-whole-balance" in bugs else amount <= balance
        if not fits:
            return JSONResponse({"error": "insufficient_funds"}, status_code=409)
        balances[account] = balance - amount
        return JSONResponse({"balance": balances[account]}, status_code=201)

    async def account(request: Request) -> JSONResponse:
        return JSONResponse({"balance": balances[request.path_params["account"]]})

    return Starlette(
        routes=[
            Route("/accounts/{account}/deposits", deposit, methods=["POST"]),
            Route("/accounts/{account}/withdrawals", withdraw, methods=["POST"]),
            Route("/accounts/{account}", account),
        ]
    )
