"""A text graph rewritten to take a report's sentences packed into one row
(contract.PACKED_TEXT_INPUTS) instead of one padded row each.

ONNX Runtime runs a short sequence at a high fixed cost per run and per row: the int8
BERT-base took 12.8 ms for 6 sentences of 8 tokens and 8.9 for 2 of 13 (the reference
report's two runs by length), and 16.7 ms for the same 65 tokens in one packed row, on a
2-core Xeon with AMX. Packing keeps each sentence's embedding: positions restart at 0 for
each window, attention stays within it (ORT's Attention and QAttention take a
(batch, sequence, sequence) mask as their mask index), and the masked mean pooling becomes
one product with a pooling matrix the runtime builds (as does the gather of each row's
first token, for an encoder pooled by its [CLS] token: BioViL's, or ours with `cls`). The
rewrite applies to the fused graph `optimize_text_encoder` writes (EmbedLayerNormalization,
Attention) and to its int8 quantization (QEmbedLayerNormalization, QAttention); it returns
False, writing nothing, on any other graph or pooling. The export's parity check then
compares the packed graph with the PyTorch model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lesionloc_export.graphs import constants, drop_unused
from lesionloc_runtime.contract import PACKED_TEXT_INPUTS, TEXT_INPUTS, names

__all__ = ["pack_text_graph"]

_PREFIX = "/pack_text_graph/"
_ATTENTION_MASK_INPUT = {"Attention": 3, "QAttention": 5}


def pack_text_graph(source: Path, target: Path, pooling: str = "mean") -> bool:
    """Write `source` rewritten for packed windows to `target`; False (nothing written) when
    the graph is not a fused BERT as the exporter writes it pooled by `pooling`
    (tokens.PACKED_POOLING's "mean", "first" or "sum")."""
    import onnx

    model = onnx.load(str(source))
    graph = model.graph
    embeds = [n for n in graph.node
              if n.op_type in ("EmbedLayerNormalization", "QEmbedLayerNormalization")]
    attention = [n for n in graph.node if n.op_type in _ATTENTION_MASK_INPUT]
    found = _first_token(graph) if pooling == "first" else _masked_sum(graph, pooling)
    if len(embeds) != 1 or not attention or found is None:
        return False
    new_inputs = _declare_inputs(graph)
    (ids, positions, mask, pool) = names(PACKED_TEXT_INPUTS)
    if embeds[0].op_type == "EmbedLayerNormalization":
        _positions_into_embedding(graph, embeds[0], ids, positions)
    else:
        _expand_quantized_embedding(graph, embeds[0], ids, positions)
    for node in attention:
        node.input[_ATTENTION_MASK_INPUT[node.op_type]] = mask
    pooled, hidden = found
    at = list(graph.node).index(pooled)
    graph.node.remove(pooled)
    graph.node.insert(at, _node("MatMul", [pool, _PREFIX + "tokens"], [pooled.output[0]]))
    graph.node.insert(at, _node("Flatten", [hidden], [_PREFIX + "tokens"], axis=2))
    drop_unused(graph)
    read = {name for n in graph.node for name in n.input}
    if any(name in read for name in names(TEXT_INPUTS)[1:]):  # the padded mask still in use
        return False
    for spec in [i for i in graph.input if i.name not in read]:
        graph.input.remove(spec)
    graph.input.extend(v for v in new_inputs if v.name in read and v.name not in
                       {i.name for i in graph.input})
    if [i.name for i in graph.input] != list(names(PACKED_TEXT_INPUTS)):
        return False
    onnx.save(model, str(target))
    return True


def _node(op: str, inputs: list[str], outputs: list[str], **attributes: Any) -> Any:
    from onnx import helper

    return helper.make_node(op, inputs, outputs, name=_PREFIX + outputs[0].rsplit("/", 1)[-1],
                            **attributes)


def _declare_inputs(graph: Any) -> list[Any]:
    """The packed contract's inputs that the graph does not declare yet (input_ids it does)."""
    from onnx import helper

    types = {"int64": 7, "int32": 6, "float32": 1}  # TensorProto's INT64, INT32, FLOAT
    have = {i.name for i in graph.input}
    return [helper.make_tensor_value_info(s.name, types[s.dtype], list(s.dims))
            for s in PACKED_TEXT_INPUTS if s.name not in have]


def _constant(graph: Any, name: str, value: Any) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(value, _PREFIX + name))
    return _PREFIX + name


def _insert_before(graph: Any, anchor: Any, nodes: list[Any]) -> None:
    at = list(graph.node).index(anchor)
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)


def _positions_into_embedding(graph: Any, embed: Any, ids: str, positions: str) -> None:
    """The fp32 EmbedLayerNormalization: token type 0 everywhere, no mask, and the position
    ids as its ninth input (int32, as are its token inputs)."""
    import numpy as np

    zero = _constant(graph, "zero", np.array(0, np.int32))
    ids32, segments, positions32 = (_PREFIX + "ids32", _PREFIX + "segments32",
                                    _PREFIX + "positions32")
    _insert_before(graph, embed, [
        _node("Cast", [ids], [ids32], to=6),
        _node("Mul", [ids32, zero], [segments]),
        _node("Cast", [positions], [positions32], to=6),
    ])
    inputs = list(embed.input[:7])
    inputs[0], inputs[1] = ids32, segments
    del embed.input[:]
    embed.input.extend([*inputs, "", positions32])


def _expand_quantized_embedding(graph: Any, embed: Any, ids: str, positions: str) -> None:
    """The int8 QEmbedLayerNormalization has no position input: its quantized tables are
    gathered and dequantized (word by token id, position by position id, token type 0), added
    and normalized, which is what the fused kernel computes."""
    import numpy as np

    (_, _, words, places, types, gamma, beta, _mask,
     s_words, s_places, s_types, s_gamma, s_beta,
     z_words, z_places, z_types, z_gamma, z_beta) = embed.input
    epsilon = next((a.f for a in embed.attribute if a.name == "epsilon"), 1e-12)
    first = _constant(graph, "type0", np.array([0], np.int64))
    p = _PREFIX

    def table(rows: str, index: str, scale: str, zero: str, name: str) -> list[Any]:
        return [_node("Gather", [rows, index], [p + name + "8"]),
                _node("DequantizeLinear", [p + name + "8", scale, zero], [p + name])]

    nodes = [*table(words, ids, s_words, z_words, "words"),
             *table(places, positions, s_places, z_places, "places"),
             *table(types, first, s_types, z_types, "types"),
             _node("Add", [p + "words", p + "places"], [p + "sum1"]),
             _node("Add", [p + "sum1", p + "types"], [p + "sum2"]),
             _node("DequantizeLinear", [gamma, s_gamma, z_gamma], [p + "gamma"]),
             _node("DequantizeLinear", [beta, s_beta, z_beta], [p + "beta"]),
             _node("LayerNormalization", [p + "sum2", p + "gamma", p + "beta"],
                   [embed.output[0]], epsilon=epsilon, axis=-1)]
    _insert_before(graph, embed, nodes)
    graph.node.remove(embed)


def _masked_sum(graph: Any, pooling: str) -> tuple[Any, str] | None:
    """(the node whose output becomes the pooling product, the hidden states it pools) for
    Div(ReduceSum(Mul(hidden, mask), axis 1, keepdims 0), divisor): "mean" (our TextEncoder's:
    the divisor is the mask's count, the Div is replaced, hidden a layer norm's output) or
    "sum" (AFLoc's: a fixed divisor, its word slots, stays after the product that replaces
    the ReduceSum; hidden its four layers summed). None if the graph pools otherwise or
    ambiguously."""
    import numpy as np

    made = {o: n for n in graph.node for o in n.output}
    consts = constants(graph)
    found = []
    for div in (n for n in graph.node if n.op_type == "Div"):
        total = made.get(div.input[0])
        if total is None or total.op_type != "ReduceSum" or len(total.input) < 2:
            continue
        keep = next((a.i for a in total.attribute if a.name == "keepdims"), 1)
        axes = _value(consts, total.input[1])
        product = made.get(total.input[0])
        fixed = div.input[1] in consts
        if keep != 0 or axes is None or np.asarray(axes).tolist() != [1] or product is None \
                or product.op_type != "Mul" or fixed != (pooling == "sum"):
            continue
        hidden = made.get(product.input[0])
        if pooling == "sum" and hidden is not None:
            found.append((total, product.input[0]))
        elif hidden is not None and hidden.op_type in ("LayerNormalization",
                                                        "SkipLayerNormalization"):
            found.append((div, hidden.output[0]))
    return found[0] if len(found) == 1 else None


def _first_token(graph: Any) -> tuple[Any, str] | None:
    """(the Gather of token 0 along the sequence axis, the hidden states it reads), as
    `last_hidden_state[:, 0]` exports; None if there is not exactly one."""
    import numpy as np

    made = {o: n for n in graph.node for o in n.output}
    consts = constants(graph)
    found = []
    for gather in (n for n in graph.node if n.op_type == "Gather"):
        axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
        index = _value(consts, gather.input[1])
        hidden = made.get(gather.input[0])
        if axis == 1 and index is not None and np.asarray(index).shape == () and \
                int(index) == 0 and hidden is not None and \
                hidden.op_type in ("LayerNormalization", "SkipLayerNormalization"):
            found.append((gather, hidden.output[0]))
    return found[0] if len(found) == 1 else None


def _value(consts: dict[str, Any], name: str) -> Any:
    """The array of constant `name` (graphs.constants), else None."""
    from onnx import numpy_helper

    return numpy_helper.to_array(consts[name]) if name in consts else None
