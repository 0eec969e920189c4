/**
 * Writes a TF.js sequential image classifier as an ONNX model (opset 13), the way a PyTorch export
 * would look: NCHW input by default, conv weights as OIHW. Used to make realistic "user" ONNX models
 * from the project's trained victims and, in tests, small ONNX models built inside the test. Layers
 * it knows: Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout (dropped: inference),
 * Activation/Softmax; activations relu, linear, softmax.
 */
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type INode = import('onnx-proto').onnx.INodeProto;
type ITensor = import('onnx-proto').onnx.ITensorProto;
type IAttribute = import('onnx-proto').onnx.IAttributeProto;
type IValueInfo = import('onnx-proto').onnx.IValueInfoProto;

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const A = onnx.AttributeProto.AttributeType;

export interface OnnxExportOptions {
  /** Input layout: nchw (PyTorch's, default) or nhwc (a Keras/tf2onnx export). */
  layout?: 'nchw' | 'nhwc';
  /** A fixed batch size instead of a dynamic one (torch.onnx.export without dynamic_axes). */
  fixedBatch?: number;
  inputName?: string;
  outputName?: string;
}

export const ints = (name: string, values: number[]): IAttribute => ({ name, type: A.INTS, ints: values });
export const int = (name: string, value: number): IAttribute => ({ name, type: A.INT, i: value });
export const str = (name: string, value: string): IAttribute => ({ name, type: A.STRING, s: new TextEncoder().encode(value) });

export function floatTensor(name: string, dims: number[], values: Float32Array): ITensor {
  return { name, dims, dataType: FLOAT, rawData: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) };
}

export function valueInfo(name: string, dims: (number | string)[], elemType = FLOAT): IValueInfo {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  };
}

/** Encode one graph as an ONNX model file's bytes. */
export function encodeModel(graph: { nodes: INode[]; initializers: ITensor[]; inputs: IValueInfo[]; outputs: IValueInfo[] }, opset = 13): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: 7,
    producerName: 'transferlab',
    opsetImport: [{ domain: '', version: opset }],
    graph: { name: 'classifier', node: graph.nodes, initializer: graph.initializers, input: graph.inputs, output: graph.outputs },
  }).finish();
}

/** Values of a tensor permuted by `perm` (row-major). */
function permute(t: tf.Tensor, perm: number[]): Float32Array {
  return tf.tidy(() => tf.transpose(t, perm).dataSync() as Float32Array);
}

export function layersToOnnx(model: tf.LayersModel, opts: OnnxExportOptions = {}): Uint8Array {
  const layout = opts.layout ?? 'nchw';
  const [, h, w, c] = model.inputs[0].shape as number[];
  const batch: number | string = opts.fixedBatch ?? 'batch';
  const inputName = opts.inputName ?? 'input';
  const outputName = opts.outputName ?? 'output';
  const nodes: INode[] = [];
  const initializers: ITensor[] = [];
  let current = inputName;
  let n = 0;
  const next = (op: string, inputs: string[], attribute: IAttribute[] = []): string => {
    const out = `${op.toLowerCase()}_${n++}`;
    nodes.push({ opType: op, input: inputs, output: [out], name: out, attribute });
    current = out;
    return out;
  };
  const activation = (name: string | undefined) => {
    if (!name || name === 'linear') return;
    if (name === 'relu') next('Relu', [current]);
    else if (name === 'softmax') next('Softmax', [current], [int('axis', -1)]);
    else throw new Error(`activation ${name} has no ONNX export here`);
  };
  if (layout === 'nhwc') next('Transpose', [current], [ints('perm', [0, 3, 1, 2])]);
  let spatial = true; // true while the tensor is NCHW
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const cfg = layer.getConfig() as Record<string, unknown>;
    if (cls === 'Conv2D') {
      const [kernel, bias] = layer.getWeights();
      const [kh, kw, cin, cout] = kernel.shape;
      initializers.push(floatTensor(`${layer.name}_W`, [cout, cin, kh, kw], permute(kernel, [3, 2, 0, 1])));
      const inputs = [current, `${layer.name}_W`];
      if (bias) {
        initializers.push(floatTensor(`${layer.name}_B`, [cout], bias.dataSync() as Float32Array));
        inputs.push(`${layer.name}_B`);
      }
      const strides = cfg.strides as number[];
      const dilations = (cfg.dilationRate as number[] | number | undefined) ?? 1;
      next('Conv', inputs, [
        ints('kernel_shape', [kh, kw]),
        ints('strides', strides),
        ints('dilations', Array.isArray(dilations) ? dilations : [dilations, dilations]),
        str('auto_pad', cfg.padding === 'same' ? 'SAME_UPPER' : 'VALID'),
      ]);
      activation(cfg.activation as string);
    } else if (cls === 'MaxPooling2D' || cls === 'AveragePooling2D') {
      const pool = cfg.poolSize as number[];
      const strides = (cfg.strides as number[] | null) ?? pool;
      next(cls === 'MaxPooling2D' ? 'MaxPool' : 'AveragePool', [current], [
        ints('kernel_shape', pool),
        ints('strides', strides),
        str('auto_pad', cfg.padding === 'same' ? 'SAME_UPPER' : 'VALID'),
      ]);
    } else if (cls === 'Flatten') {
      // TF.js flattens channels-last (H, W, C order); go back to NHWC first so Dense weights fit as they are.
      if (spatial) next('Transpose', [current], [ints('perm', [0, 2, 3, 1])]);
      next('Flatten', [current], [int('axis', 1)]);
      spatial = false;
    } else if (cls === 'Dense') {
      const [kernel, bias] = layer.getWeights();
      initializers.push(floatTensor(`${layer.name}_W`, kernel.shape, kernel.dataSync() as Float32Array));
      const inputs = [current, `${layer.name}_W`];
      if (bias) {
        initializers.push(floatTensor(`${layer.name}_B`, bias.shape, bias.dataSync() as Float32Array));
        inputs.push(`${layer.name}_B`);
      }
      next('Gemm', inputs);
      activation(cfg.activation as string);
    } else if (cls === 'Dropout') {
      continue;
    } else if (cls === 'Activation') {
      activation(cfg.activation as string);
    } else if (cls === 'Softmax') {
      activation('softmax');
    } else if (cls === 'InputLayer') {
      continue;
    } else {
      throw new Error(`layer ${layer.name} (${cls}) has no ONNX export here`);
    }
  }
  // Name the last value as the graph's output.
  nodes[nodes.length - 1].output = [outputName];
  const classes = (model.outputs[0].shape as number[])[1];
  return encodeModel({
    nodes,
    initializers,
    inputs: [valueInfo(inputName, layout === 'nchw' ? [batch, c, h, w] : [batch, h, w, c])],
    outputs: [valueInfo(outputName, [batch, classes])],
  });
}
