"""One way of writing dates and times on every page: "Dec 4, 2026" and "Dec 4, 2026 3:05 PM" (local time)."""

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.dateformat import format as date_format

register = template.Library()

DAY = "M j, Y"
MOMENT = "M j, Y g:i A"


@register.filter
def day(value: date | datetime | None) -> str:
    if not value:
        return ""
    if isinstance(value, datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
    return date_format(value, DAY)


@register.filter
def moment(value: datetime | None) -> str:
    if not value:
        return ""
    return date_format(timezone.localtime(value) if timezone.is_aware(value) else value, MOMENT)
