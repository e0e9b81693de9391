from django.apps import AppConfig


class FieldSyncConfig(AppConfig):
    """The project package is also an app: it holds what is shared by the pages and the API (API clients,
    idempotency keys) and project-wide management commands."""

    name = "fieldsync"
    verbose_name = "FieldSync"

    def ready(self) -> None:
        from fieldsync import checks  # noqa: F401 - registers the production settings checks
