"""Prefect 1's task library, at its module paths: ``control_flow``, ``core``, ``shell``
(``prefect`` runs registered flows)."""

__all__: list[str] = []
