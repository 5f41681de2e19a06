"""Response models of the /v1 routes, for the OpenAPI schema (`/openapi.json`).

They document what the services return; the routes declare them with `responses=`
and still send the services' dicts as they are, so the answers never change because
of these models. Every model allows extra fields: the contract lets fields be added
beside the documented ones. Split by area: common (errors, paging, the helpers the
route decorators use), indexes, documents, search (with evidence and tools), jobs,
status (health, readiness, /v1/rag/status), admin (keys, webhooks, audit log).
"""
