"""The Bizon orders gateway (``docs/reference/orders-gateway-api.txt``): codes, typed models,
request builders, the error map and clients.

::

    settings.py    BizonSettings.from_env (BILLING_BIZON_*)
    codes.py       order/operation statuses, allowed actions, ISO 8583 response codes
    models.py      typed requests and responses (amounts exact, secrets wrapped)
    errors.py      the error tree and the one mapping of responses and transport failures
    operations.py  the sans-I/O core: one builder per endpoint, interpret, pagination
    client.py      BizonClient (sync) and AsyncBizonClient over httpx
"""
