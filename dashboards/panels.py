"""What every dashboard is built from: InfluxQL targets, grid places, transformations, query
variables, and the last touches of the JSON (panel ids, Grafana's import inputs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from grafana_foundation_sdk.builders import dashboard as board
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

DATASOURCE = model.DataSourceRef(type_val="influxdb", uid="${datasource}")


@dataclass
class InfluxQL(cogvariants.Dataquery):
    """An InfluxQL query of Grafana's InfluxDB datasource (raw query mode)."""

    query: str
    result_format: str = "time_series"
    alias: str = ""
    ref_id: str = "A"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "refId": self.ref_id,
            "datasource": {"type": "influxdb", "uid": "${datasource}"},
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias:
            out["alias"] = self.alias
        return out


class Query(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of :class:`InfluxQL` targets (``result_format`` time_series or table)."""

    def __init__(self, query: str, result_format: str = "time_series", alias: str = "", ref_id: str = "A") -> None:
        self._internal = InfluxQL(query, result_format, alias, ref_id)

    def build(self) -> InfluxQL:
        return self._internal


def bands(low: float, high: float) -> board.ThresholdsConfig:
    return (
        board.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(None, "red"), model.Threshold(low, "yellow"), model.Threshold(high, "green")])
    )


def grid(x: int, y: int, w: int, h: int) -> model.GridPos:
    return model.GridPos(h=h, w=w, x=x, y=y)


def transform(kind: str, options: dict[str, Any]) -> model.DataTransformerConfig:
    t = model.DataTransformerConfig()
    t.id_val, t.options = kind, options
    return t


def prop(key: str, value: Any) -> model.DynamicConfigValue:
    return model.DynamicConfigValue(id_val=key, value=value)


def query_variable(name: str, label: str, query: str, choose_many: bool = True) -> board.QueryVariable:
    variable = (
        board.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    if choose_many:
        variable = variable.multi(True).include_all(True).all_value(".*")
    return variable


def finish(builder: board.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON: panels numbered, repeated panels two a row, import inputs added."""
    data: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for i, p in enumerate(data["panels"], start=1):
        p["id"] = i
        if p.get("repeat"):
            p["maxPerRow"] = 2
    # Grafana's import screen asks for these: any InfluxDB datasource.
    data = {
        "__inputs": [
            {
                "name": "DS_INFLUXDB",
                "label": "InfluxDB",
                "description": "the InfluxDB (InfluxQL) the agents write to",
                "type": "datasource",
                "pluginId": "influxdb",
                "pluginName": "InfluxDB",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.0.0"},
            {"type": "datasource", "id": "influxdb", "name": "InfluxDB", "version": "1.0.0"},
        ],
        **data,
    }
    return data
