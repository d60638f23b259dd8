"""What every joulecast dashboard shares, on top of grafana-foundation-sdk's builders.

:class:`Board` wraps the SDK's dashboard builder: it numbers panels and queries (unique
ids, ``refId`` A, B, ...), lays panels out left to right on Grafana's 24-column grid
(a panel that does not fit starts a new line; a row starts below everything), and gives
every panel and query the ``${datasource}`` variable, which file provisioning resolves
(an ``${DS_...}`` import placeholder would not). Panel kinds are the SDK's own panel
builders; nothing here writes dashboard JSON by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAGS = ["joulecast", "energy", "gpu"]


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel, with its legend."""

    expr: str
    legend: str = ""


def query_var(name: str, label: str, query: str, multi: bool = True) -> Any:
    v = (
        dashboard_builders.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DS)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return v.all_value(".*") if multi else v


def datasource_var() -> Any:
    return (
        dashboard_builders.DatasourceVariable("datasource").label("Data source").type("prometheus")
    )


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[Any]) -> None:
        self.builder = (
            dashboard_builders.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(TAGS)
            .timezone("browser")
            .refresh("30s")
            .time("now-3h", "now")
            .editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .version(1)
            .link(
                dashboard_builders.DashboardLink("joulecast")
                .type(dm.DashboardLinkType.DASHBOARDS)
                .tags(["joulecast"])
                .as_dropdown(True)
            )
            .variables([datasource_var(), *variables])
        )
        self._id = 0
        self._x = self._y = self._row_h = 0

    def _next_id(self) -> int:
        self._id += 1
        return self._id

    def _place(self, w: int, h: int) -> dm.GridPos:
        if self._x + w > 24:
            self._newline()
        pos = dm.GridPos(h=h, w=w, x=self._x, y=self._y)
        self._x += w
        self._row_h = max(self._row_h, h)
        return pos

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x = self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        pos = dm.GridPos(h=1, w=24, x=0, y=self._y)
        self.builder.with_row(
            dashboard_builders.Row(title).id(self._next_id()).grid_pos(pos).collapsed(False)
        )
        self._y += 1

    def _add(self, panel: Any, title: str, queries: list[Query], w: int, h: int, **kw: Any) -> None:
        panel = (
            panel.id(self._next_id())
            .title(title)
            .description(kw.get("description", ""))
            .datasource(DS)
            .unit(kw.get("unit", "short"))
            .grid_pos(self._place(w, h))
        )
        if kw.get("decimals") is not None:
            panel = panel.decimals(kw["decimals"])
        instant = kw.get("instant", False)
        for i, q in enumerate(queries):
            target = prom.Dataquery().expr(q.expr).legend_format(q.legend).ref_id(chr(65 + i))
            target = target.datasource(DS)
            if instant:
                target = target.instant().format(pm.PromQueryFormat.TABLE)
            panel = panel.with_target(target)
        self.builder.with_panel(panel)

    def timeseries(
        self,
        title: str,
        queries: list[Query],
        *,
        w: int = 12,
        h: int = 8,
        fill: int = 0,
        stack: bool = False,
        **kw: Any,
    ) -> None:
        legend = (
            common_builders.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.TABLE)
            .placement(cm.LegendPlacement.BOTTOM)
            .calcs(["lastNotNull"])
            .show_legend(True)
        )
        stacking = common_builders.StackingConfig().mode(
            cm.StackingMode.NORMAL if stack else cm.StackingMode.NONE
        )
        panel = (
            timeseries.Panel()
            .fill_opacity(fill)
            .line_width(1)
            .show_points(cm.VisibilityMode.NEVER)
            .stacking(stacking)
            .legend(legend)
        )
        self._add(panel, title, queries, w, h, **kw)

    def stat(self, title: str, queries: list[Query], *, w: int = 6, h: int = 4, **kw: Any) -> None:
        panel = stat.Panel().reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"])
        )
        self._add(panel, title, queries, w, h, **kw)

    def bargauge(
        self, title: str, queries: list[Query], *, w: int = 12, h: int = 10, **kw: Any
    ) -> None:
        panel = bargauge.Panel().reduce_options(
            common_builders.ReduceDataOptions().calcs(["lastNotNull"])
        )
        self._add(panel, title, queries, w, h, **kw)

    def table(
        self, title: str, queries: list[Query], *, w: int = 12, h: int = 8, **kw: Any
    ) -> None:
        self._add(table.Panel(), title, queries, w, h, instant=True, **kw)

    def build(self) -> dm.Dashboard:
        return self.builder.build()


def to_json(board: dm.Dashboard) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(board) + "\n"
