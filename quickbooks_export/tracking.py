"""Which QuickBooks Class and Department (location) an invoice carries: its job type's choice, else its unit's.

A person chooses, on the QuickBooks page, a class and/or location for the unit (QuickBooksUnitTracking) and, next to
it, for any of the unit's job types (QuickBooksJobTypeTracking). For one invoice, each of the two is resolved on its
own: the job type's when it has one chosen, else the unit's, else none. An invoice without a job, or whose job has
no type, takes the unit's. Whether anything is sent at all is the company's (mappers.invoice_payload: a ClassRef
only while it tracks classes, on the invoice or on each line as it keeps them; a DepartmentRef only while it tracks
locations). A resolved choice that is no longer active in the company's lists as last read fails the invoice with a
plain message (invoice_tracking_problem) instead of QuickBooks' 610.

Reads: the run loads both tables for its company once (tracking_choices_for_realm, two queries); the invoices it
builds arrive with their job (billing.selectors.payments_for_export), so resolving costs no query per invoice.
"""

from dataclasses import dataclass, field

from django.db import transaction

from billing.selectors import job_types_of_unit
from fieldsync.exceptions import ApplicationError

from .company import company_profile_get
from .models import QuickBooksCompanyProfile, QuickBooksJobTypeTracking, QuickBooksUnitTracking


@dataclass(frozen=True)
class Chosen:
    """The class and location one invoice carries, and whose choice each is (for messages)."""

    class_id: str = ""
    class_name: str = ""
    class_of: str = ""
    department_id: str = ""
    department_name: str = ""
    department_of: str = ""

    def refs(self) -> dict[str, str]:
        """Keyword arguments of mappers.invoice_payload."""
        return {"class_id": self.class_id, "department_id": self.department_id}


@dataclass
class TrackingChoices:
    """One company's choices: unit id -> QuickBooksUnitTracking, job type id -> QuickBooksJobTypeTracking."""

    units: dict[int, QuickBooksUnitTracking] = field(default_factory=dict)
    job_types: dict[int, QuickBooksJobTypeTracking] = field(default_factory=dict)

    def for_invoice(self, invoice) -> Chosen:
        unit = self.units.get(invoice.business_unit_id)
        by_type = None
        if self.job_types and invoice.job_id:  # no job-type choice in this company: the job is not even looked at
            by_type = self.job_types.get(invoice.job.job_type_id)
        unit_name = lambda: str(unit.business_unit) if unit else ""  # noqa: E731 (read only for a message)
        type_name = f"job type {by_type.job_type.name}" if by_type else ""
        if by_type and by_type.class_id:
            class_id, class_name, class_of = by_type.class_id, by_type.class_name, type_name
        elif unit and unit.class_id:
            class_id, class_name, class_of = unit.class_id, unit.class_name, unit_name()
        else:
            class_id = class_name = class_of = ""
        if by_type and by_type.department_id:
            dept_id, dept_name, dept_of = by_type.department_id, by_type.department_name, type_name
        elif unit and unit.department_id:
            dept_id, dept_name, dept_of = unit.department_id, unit.department_name, unit_name()
        else:
            dept_id = dept_name = dept_of = ""
        return Chosen(class_id, class_name, class_of, dept_id, dept_name, dept_of)


def tracking_choices_for_realm(*, realm_id: str) -> TrackingChoices:
    """Every unit's and job type's choice in this company (two queries; read once per export run)."""
    return TrackingChoices(
        units={row.business_unit_id: row for row in QuickBooksUnitTracking.objects.filter(realm_id=realm_id)},
        job_types={
            row.job_type_id: row
            for row in QuickBooksJobTypeTracking.objects.filter(realm_id=realm_id).select_related("job_type")
        },
    )


def tracking_choices_for_invoice(*, realm_id: str, invoice) -> TrackingChoices:
    """The choices one invoice can take (its unit's, its job type's): at most three queries, for a single invoice
    (invoice_updates)."""
    job_type_id = invoice.job.job_type_id if invoice.job_id else None
    return TrackingChoices(
        units={
            row.business_unit_id: row
            for row in QuickBooksUnitTracking.objects.filter(
                realm_id=realm_id, business_unit_id=invoice.business_unit_id
            )
        },
        job_types={
            row.job_type_id: row
            for row in QuickBooksJobTypeTracking.objects.filter(
                realm_id=realm_id, job_type_id=job_type_id
            ).select_related("job_type")
        }
        if job_type_id
        else {},
    )


def invoice_tracking_problem(profile: QuickBooksCompanyProfile | None, chosen: Chosen) -> str:
    """Why the invoice's class or location cannot go on it, in words; "" when it can (or nothing is chosen, or the
    company does not track it: then nothing is sent). Checked against the lists as last read, so a class made
    inactive or deleted in QuickBooks stops the invoice with this message instead of QuickBooks' 610."""
    if profile is None:
        return ""
    if chosen.class_id and profile.tracks_classes and chosen.class_id not in profile.active_choices("classes"):
        return (
            f"The QuickBooks class {chosen.class_name or chosen.class_id} chosen for {chosen.class_of} is inactive "
            "or gone in QuickBooks; choose another on the QuickBooks page."
        )
    if (
        chosen.department_id
        and profile.track_departments
        and chosen.department_id not in profile.active_choices("departments")
    ):
        return (
            f"The QuickBooks {profile.location_label.lower()} {chosen.department_name or chosen.department_id} "
            f"chosen for {chosen.department_of} is inactive or gone in QuickBooks; choose another on the "
            "QuickBooks page."
        )
    return ""


@transaction.atomic
def job_type_tracking_update(*, realm_id: str, business_unit, user, choices: dict[int, tuple[str, str]]) -> None:
    """Save, for job types of `business_unit`, the class and location their jobs' invoices carry in this company:
    `choices` maps a job type id to (class_id, department_id); "" keeps the unit's choice for that one, and a job
    type with neither goes back to the unit's. Ids must be active entries of the company's lists as last read (and
    the company must track them). Raises ApplicationError and saves nothing on any refusal."""
    profile = company_profile_get(realm_id=realm_id)
    if profile is None:
        raise ApplicationError(
            "FieldSync has not read this QuickBooks company yet; read it on the QuickBooks page first.",
            code="company_not_read",
        )
    job_types = {job_type.pk: job_type for job_type in job_types_of_unit(business_unit=business_unit)}
    if unknown := set(choices) - job_types.keys():
        raise ApplicationError(
            f"{business_unit} has no job type {min(unknown)}; reload the QuickBooks page.", code="unknown_job_type"
        )
    classes, departments = profile.active_choices("classes"), profile.active_choices("departments")
    label = profile.location_label.lower()
    for job_type_id, (class_id, department_id) in choices.items():
        name = job_types[job_type_id].name
        if class_id and (not profile.tracks_classes or class_id not in classes):
            raise ApplicationError(
                f"QuickBooks has no active class {class_id} for job type {name} (or class tracking is off); read the "
                "company again on the QuickBooks page and choose again.",
                code="unknown_class",
            )
        if department_id and (not profile.track_departments or department_id not in departments):
            raise ApplicationError(
                f"QuickBooks has no active {label} {department_id} for job type {name} (or {label} tracking is "
                "off); read the company again on the QuickBooks page and choose again.",
                code="unknown_department",
            )
    existing = {
        row.job_type_id: row
        for row in QuickBooksJobTypeTracking.objects.select_for_update().filter(
            realm_id=realm_id, job_type_id__in=choices
        )
    }
    cleared = [pk for pk, (class_id, department_id) in choices.items() if not class_id and not department_id]
    QuickBooksJobTypeTracking.objects.filter(realm_id=realm_id, job_type_id__in=cleared).delete()
    for job_type_id, (class_id, department_id) in choices.items():
        if job_type_id in cleared:
            continue
        row = existing.get(job_type_id) or QuickBooksJobTypeTracking(realm_id=realm_id, job_type_id=job_type_id)
        if row.pk and (row.class_id, row.department_id) == (class_id, department_id):
            continue  # unchanged: no write, and who chose it stays who chose it
        row.class_id, row.class_name = class_id, classes.get(class_id, "")
        row.department_id, row.department_name = department_id, departments.get(department_id, "")
        row.updated_by = user
        row.full_clean(exclude=["job_type"])
        row.save()


def job_type_tracking_rows(*, realm_id: str, business_unit) -> dict[int, QuickBooksJobTypeTracking]:
    """Job type id -> its choice in this company, for the unit's job types (one query)."""
    return {
        row.job_type_id: row
        for row in QuickBooksJobTypeTracking.objects.filter(realm_id=realm_id, job_type__business_unit=business_unit)
    }
