"""The big sortable, filterable tables (goals; compare's transitions) as ARIA grids of divs.

Why not `<table>`: a table is laid out as a whole, so a 5,000-row one took 7 s to open in
Chromium on a 2-core machine. Rows as CSS-grid blocks with `content-visibility: auto` are laid
out and painted only when scrolled into view. Rows carry their filter keys as data attributes
and cells their sort keys as `data-v`; the page's script reads those and textContent only.
"""

from __future__ import annotations

from dataclasses import dataclass

from reports.text import html_escape

STATUS_ORDER = {"broken": 0, "held": 1, "error": 2, "pending": 3}
_NUM_SORT = ' data-type="num"'
_RIGHT = ' class="num"'


@dataclass(frozen=True)
class Column:
    """A header: `num` sorts by number (the cells' `data-v`), `right` aligns right."""

    name: str
    num: bool = False
    right: bool = False


def cell(inner: str, *, value: float | int | None = None, num: bool = False) -> str:
    """A cell; `inner` is markup the caller already escaped; `value` is its numeric sort key."""
    key = f' data-v="{value}"' if value is not None else ""
    cls = ' class="num"' if num else ""
    return f'<div role="cell"{cls}{key}>{inner}</div>'


def row(cells: list[str], **filters: str) -> str:
    attrs = "".join(
        f' data-{name}="{html_escape(value, 200)}"' for name, value in filters.items()
    )
    return f'<div class="gr" role="row"{attrs}>{"".join(cells)}</div>'


def grid(table_id: str, kind: str, columns: list[Column], rows: str) -> str:
    heads = "".join(
        f'<div role="columnheader"{_NUM_SORT if c.num else ""}{_RIGHT if c.right else ""}>'
        '<button type="button">'
        f"{html_escape(c.name)}</button></div>"
        for c in columns
    )
    return (
        f'<div class="scroll"><div id="{table_id}" class="grid {kind} sortable" role="table">'
        f'<div class="gh" role="rowgroup"><div class="gr" role="row">{heads}</div></div>'
        f'<div class="gb" role="rowgroup">{rows}</div></div></div>'
    )


def filters(
    table_id: str, total: int, *, statuses: list[tuple[str, str]], categories: list[str],
    status_key: str = "status",
) -> str:
    """Text search plus a status-like and a category select, wired to the grid by `data-for`;
    each select matches the rows' `data-<key>` attribute."""
    status_opts = "".join(f'<option value="{v}">{html_escape(label)}</option>'
                          for v, label in statuses)
    cat_opts = "".join(f'<option value="{html_escape(c, 200)}">{html_escape(c, 80)}</option>'
                       for c in categories)
    category = (
        f'<select data-filter="category" aria-label="Category"><option value="">any category'
        f"</option>{cat_opts}</select>" if categories else ""
    )
    return (
        f'<div class="filters" data-for="{table_id}">'
        '<input type="search" data-filter="text" placeholder="Filter: any text in the row" '
        'aria-label="Filter rows by text">'
        f'<select data-filter="{status_key}" aria-label="{status_key}"><option value="">any '
        f"{status_key}</option>{status_opts}</select>{category}"
        f"<output>{total} of {total} shown</output></div>"
    )
