"""Cursor pagination, newest first: stable while rows are added, and no COUNT(*) over a large table."""

from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class ApiCursorPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def get_page_size(self, request):
        """page_size from 1 to max_page_size; anything else is refused (DRF would silently use the default)."""
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"page_size must be a whole number from 1 to {self.max_page_size}."]},
                code="invalid_page_size",
            )
        return int(raw)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            cursor = False
        # Every list is ordered by id: a position that is not an id in range was not made by us.
        if cursor is False or (cursor is not None and not _is_id(cursor.position)):
            # A cursor the client mangled is bad input (400), not a missing resource.
            raise exceptions.ValidationError(
                {self.cursor_query_param: ["This cursor is not valid; follow the `next` link of the previous page."]},
                code="invalid_cursor",
            )
        return cursor


def _is_id(position) -> bool:
    if position is None:
        return True
    return isinstance(position, str) and position.isascii() and position.isdigit() and int(position) < 2**63
