"""Small ONNX graph edits the exporter needs: drop an output (and its dead nodes), sort nodes topologically,
attach the model card."""

from __future__ import annotations

import onnx

from export.errors import ExportError
from gan_core.card import ModelCard
from gan_core.card_files import card_into_bytes


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    return m


def drop_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """A copy of `model` without graph output `name` and without the nodes and weights only it needed."""
    m = _copy(model)
    keep = [o for o in m.graph.output if o.name != name]
    del m.graph.output[:]
    m.graph.output.extend(keep)
    needed = {o.name for o in keep}
    live = []
    for node in reversed(m.graph.node):  # nodes are in topological order
        if any(o in needed for o in node.output):
            live.append(node)
            needed.update(i for i in node.input if i)
    del m.graph.node[:]
    m.graph.node.extend(reversed(live))
    inits = [t for t in m.graph.initializer if t.name in needed]
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    return m


def toposorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy with nodes in dependency order (onnx.checker requires it; some converters append nodes)."""
    m = _copy(model)
    ready = {i.name for i in m.graph.input} | {t.name for t in m.graph.initializer} | {""}
    pending, ordered = list(m.graph.node), []
    while pending:
        rest = [n for n in pending if not all(i in ready for i in n.input)]
        done = [n for n in pending if all(i in ready for i in n.input)]
        if not done:
            raise ExportError(f"graph has a cycle or a missing input at node {rest[0].name!r}")
        for n in done:
            ordered.append(n)
            ready.update(n.output)
        pending = rest
    del m.graph.node[:]
    m.graph.node.extend(ordered)
    return m


def with_card(model: onnx.ModelProto, card: ModelCard) -> bytes:
    """The serialized model with the card attached (gan_core.card_files, the one card writer)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.producer_name, m.producer_version = "gan-service", card.versions.get("gan_service", "")
    return card_into_bytes(m.SerializeToString(), "onnx", card)
