from django.utils.functional import SimpleLazyObject

from .selectors import manual_items_open_count


def _open_count(request) -> int:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.has_perm("billing.view_manualhandlingitem"):
        return 0
    return manual_items_open_count()


def manual_handling(request):
    """`manual_items_open` for the navigation badge: one COUNT on an indexed column, only when a template uses it."""
    return {"manual_items_open": SimpleLazyObject(lambda: _open_count(request))}
