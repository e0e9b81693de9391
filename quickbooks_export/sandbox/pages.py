"""The few HTML pages of the sandbox: Intuit's consent screen (pick or create a company, approve) and an index."""

from __future__ import annotations

from html import escape

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2933; background: #f4f5f7; margin: 0; }
main { max-width: 30rem; margin: 3rem auto; background: #fff; border-radius: 8px; padding: 2rem;
       box-shadow: 0 1px 3px rgba(0,0,0,.12); }
h1 { font-size: 1.3rem; margin-top: 0; }
fieldset { border: 0; padding: 0; margin: 1rem 0; }
label { display: block; padding: .35rem 0; }
input[type=text] { width: 100%; box-sizing: border-box; padding: .45rem; margin-top: .25rem; }
.actions { display: flex; gap: .75rem; margin-top: 1.5rem; }
button { padding: .55rem 1.2rem; border-radius: 4px; border: 1px solid #2ca01c; font-size: 1rem; cursor: pointer; }
button[value=approve] { background: #2ca01c; color: #fff; }
button[value=deny] { background: #fff; color: #1f2933; border-color: #9aa5b1; }
.note { color: #616e7c; font-size: .85rem; }
code { background: #eef0f2; padding: 0 .25rem; }
"""


def _page(title: str, content: str) -> bytes:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><main>{content}</main></body></html>"
    ).encode()


def consent_page(
    *,
    params: dict[str, str],
    companies: list[tuple[str, str]],
    profiles: list[tuple[str, str]] = (),
    default_profile: str = "us-ast",
    default_seed: str | None = None,
) -> bytes:
    """Intuit's consent screen, simplified: choose a sandbox company (or name a new one, of a kind) and connect."""
    hidden = "".join(
        f'<input type="hidden" name="{escape(key)}" value="{escape(value)}">'
        for key, value in params.items()
        if key in ("client_id", "redirect_uri", "response_type", "scope", "state")
    )
    options = "".join(
        f'<label><input type="radio" name="realm_id" value="{escape(realm_id)}"{" checked" if i == 0 else ""}> '
        f"{escape(name)} <span class=note>(realm {escape(realm_id)})</span></label>"
        for i, (realm_id, name) in enumerate(companies)
    )
    new_checked = "" if companies else " checked"
    profile_options = "".join(
        f'<option value="{escape(key)}"{" selected" if key == default_profile else ""}>{escape(key)}: '
        f"{escape(description)}</option>"
        for key, description in profiles
    )
    seed_checked = " checked" if default_seed == "collisions" else ""
    content = f"""
<h1>Connect {escape(params.get("client_id", ""))} to QuickBooks</h1>
<p>The app asks for access to: <code>{escape(params.get("scope", ""))}</code></p>
<form method="post">
  {hidden}
  <fieldset>
    <legend>Company</legend>
    {options}
    <label><input type="radio" name="realm_id" value="new"{new_checked}> A new sandbox company named
      <input type="text" name="company_name" value="Sandbox Company" maxlength="100"></label>
    <label>Kind of company <select name="company_profile">{profile_options}</select></label>
    <label><input type="checkbox" name="company_seed" value="collisions"{seed_checked}> Start with data that
      collides with FieldSync's demo (inactive and look-alike items and customers, a paid INV-1044)</label>
  </fieldset>
  <div class="actions">
    <button type="submit" name="action" value="approve">Connect</button>
    <button type="submit" name="action" value="deny">Cancel</button>
  </div>
</form>
<p class="note">Local QuickBooks Online sandbox. No Intuit account is involved.</p>"""
    return _page("Connect to QuickBooks (sandbox)", content)


def error_page(message: str) -> bytes:
    return _page("Authorization error", f"<h1>Authorization error</h1><p>{escape(message)}</p>")


def index_page(*, base_url: str, client_id: str, companies: list[tuple[str, ...]]) -> bytes:
    rows = "".join(
        f"<li>{escape(name)} - realm <code>{escape(realm_id)}</code>"
        + (f" ({escape(extra[0])})" if extra else "")
        + "</li>"
        for realm_id, name, *extra in companies
    )
    content = f"""
<h1>QuickBooks Online sandbox</h1>
<p>Discovery document: <code>{escape(base_url)}/.well-known/openid_configuration</code><br>
API base: <code>{escape(base_url)}/v3</code><br>Client id: <code>{escape(client_id)}</code></p>
<h2>Companies</h2><ul>{rows or "<li>None yet: connect the app to create one.</li>"}</ul>"""
    return _page("QuickBooks Online sandbox", content)


def payment_page(*, company_name: str, payment: dict | None, invoices: dict[str, dict]) -> bytes:
    """What "Open in QuickBooks" shows against the local sandbox: the payment as QuickBooks keeps it, in words (the
    real link opens Intuit's Receive Payment screen, which the sandbox has no equivalent of)."""
    note = (
        "<p class=note>This is the <strong>local QuickBooks sandbox</strong> FieldSync uses for development and "
        "tests, not real QuickBooks. Against a real company this link opens the payment in QuickBooks Online.</p>"
    )
    if payment is None:
        return _page("Payment not found", f"<h1>No such payment in {escape(company_name)}</h1>{note}")
    customer = payment.get("CustomerRef") or {}
    rows = []
    for line in payment.get("Line") or []:
        for linked in line.get("LinkedTxn") or []:
            invoice = invoices.get(str(linked.get("TxnId")), {})
            rows.append(
                f"<li>{escape(str(line.get('Amount')))} to invoice {escape(str(invoice.get('DocNumber', '?')))}"
                f" (total {escape(str(invoice.get('TotalAmt', '?')))}, still open"
                f" {escape(str(invoice.get('Balance', '?')))})</li>"
            )
    applied = f"<ul>{''.join(rows)}</ul>" if rows else "<p>Not applied to any invoice.</p>"
    unapplied = payment.get("UnappliedAmt")
    content = (
        f"<h1>Payment {escape(str(payment.get('Id')))} · {escape(company_name)}</h1>"
        f"<p><strong>{escape(str(payment.get('TotalAmt')))}</strong> received {escape(str(payment.get('TxnDate')))}"
        f" from {escape(str(customer.get('name') or customer.get('value') or '?'))}</p>"
        f"<h2>Applied</h2>{applied}"
        + (f"<p>Unapplied: {escape(str(unapplied))}</p>" if unapplied not in (None, 0, "0", "0.00") else "")
        + note
    )
    return _page(f"Payment {payment.get('Id')}", content)
