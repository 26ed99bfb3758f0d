"""Hand-built TFLite models for the conversion tests: any graph of builtin operators (residual sums
included), written with LiteRT's own schema module (object API) and flatbuffers, so that LiteRT's
interpreter, not edgebrain, says what the file computes."""

from __future__ import annotations

import numpy as np


class TFLiteBuilder:
    """Tensors and operators of one float32 subgraph. ``op`` returns the index of the operator's output
    tensor; ``write`` writes the model with the given input and output tensors."""

    def __init__(self):
        from ai_edge_litert import schema_py_generated

        self.s = schema_py_generated
        self.bufs, self.tensors, self.codes, self.ops = [self.s.BufferT()], [], [], []

    def tensor(self, shape, data=None, ttype=0) -> int:
        t = self.s.TensorT()
        t.name, t.shape, t.type, t.buffer = f"t{len(self.tensors)}", list(shape), ttype, 0
        if data is not None:
            b = self.s.BufferT()
            b.data = np.frombuffer(np.asarray(data, np.int32 if ttype == 2 else np.float32).tobytes(), np.uint8)
            self.bufs.append(b)
            t.buffer = len(self.bufs) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, name, inputs, out_shape, opt_type=None, **opts) -> int:
        s = self.s
        code = getattr(s.BuiltinOperator, name)
        if code not in [c.builtinCode for c in self.codes]:
            c = s.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), 1
            self.codes.append(c)
        o = s.OperatorT()
        o.opcodeIndex = [c.builtinCode for c in self.codes].index(code)
        o.inputs, o.outputs = list(inputs), [self.tensor(out_shape)]
        if opt_type:
            o.builtinOptionsType = getattr(s.BuiltinOptions, opt_type)
            o.builtinOptions = getattr(s, opt_type + "T")()
            for k, v in opts.items():
                setattr(o.builtinOptions, k, v)
        self.ops.append(o)
        return o.outputs[0]

    # ------------------------------------------------------------------ the operators the tests use
    def dense(self, x, w, b, act=0) -> int:
        return self.op("FULLY_CONNECTED", [x, self.tensor(w.shape, w), self.tensor(b.shape, b)], (1, w.shape[0]),
                       "FullyConnectedOptions", fusedActivationFunction=act)

    def conv(self, x, w, b, out_shape, act=0, padding=0, stride=(1, 1)) -> int:
        """CONV_2D, ``w`` (cout, kh, kw, cin); padding 0 SAME, 1 VALID."""
        return self.op("CONV_2D", [x, self.tensor(w.shape, w), self.tensor(b.shape, b)], out_shape, "Conv2DOptions",
                       padding=padding, strideH=stride[0], strideW=stride[1], dilationHFactor=1, dilationWFactor=1,
                       fusedActivationFunction=act)

    def add(self, a, b, out_shape, act=0) -> int:
        return self.op("ADD", [a, b], out_shape, "AddOptions", fusedActivationFunction=act)

    def maxpool(self, x, out_shape, window, stride=None) -> int:
        stride = stride or window
        return self.op("MAX_POOL_2D", [x], out_shape, "Pool2DOptions", padding=1, strideH=stride[0], strideW=stride[1],
                       filterHeight=window[0], filterWidth=window[1], fusedActivationFunction=0)

    def write(self, path, inputs, outputs):
        import flatbuffers

        s = self.s
        g = s.SubGraphT()
        g.tensors, g.inputs, g.outputs = self.tensors, list(inputs), list(outputs)
        g.operators, g.name = self.ops, "main"
        m = s.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, self.codes, [g], self.bufs
        m.description = "edgebrain test"
        b = flatbuffers.Builder(0)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        path.write_bytes(bytes(b.Output()))
        return path

    # ------------------------------------------------------------------ additions: names, int8 tensors
    def name(self, t, name) -> int:
        """Give tensor ``t`` the name ``name`` (``serving_default_h_in:0``, as TensorFlow's converter names
        them); returns ``t``."""
        self.tensors[t].name = name
        return t

    def qtensor(self, shape, scale, zero_point=0, data=None, ttype=9) -> int:
        """A per-tensor quantized tensor: int8 (``ttype`` 9) or int32 (2, a bias), ``data`` already
        integer."""
        t = self.tensor(shape)
        q = self.s.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = [float(scale)], [int(zero_point)], 0
        self.tensors[t].quantization, self.tensors[t].type = q, ttype
        if data is not None:
            b = self.s.BufferT()
            b.data = np.frombuffer(np.asarray(data, np.int32 if ttype == 2 else np.int8).tobytes(), np.uint8)
            self.bufs.append(b)
            self.tensors[t].buffer = len(self.bufs) - 1
        return t

    def qop(self, name, inputs, out_shape, scale, zero_point=0, opt_type=None, **opts) -> int:
        """:meth:`op` with an int8 output quantized with ``scale`` and ``zero_point``."""
        out = self.op(name, inputs, out_shape, opt_type, **opts)
        q = self.s.QuantizationParametersT()
        q.scale, q.zeroPoint, q.quantizedDimension = [float(scale)], [int(zero_point)], 0
        self.tensors[out].quantization, self.tensors[out].type = q, 9
        return out

    def qdense(self, x, w, w_scale, b, b_scale, out_scale, out_zero_point=0) -> int:
        """int8 FULLY_CONNECTED: ``w`` int8 (out, in) with scale ``w_scale`` (zero point 0), ``b`` int32 with
        ``b_scale`` (the input's scale × ``w_scale``), no fused activation."""
        wt = self.qtensor(w.shape, w_scale, 0, w)
        bt = self.qtensor(b.shape, b_scale, 0, b, ttype=2)
        return self.qop("FULLY_CONNECTED", [x, wt, bt], (1, w.shape[0]), out_scale, out_zero_point,
                        "FullyConnectedOptions", fusedActivationFunction=0)
