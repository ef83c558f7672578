// A non-Python client of a `clf-export --embed-preprocess full` model, as the README's "ONNX metadata" section
// describes it: decode each PNG to RGB, read the class names from the file's metadata_props with a minimal
// protobuf walk (onnxruntime-node does not expose custom metadata), run onnxruntime-node, print JSON.
//
//   node full_preprocess_client.js MODEL.onnx IMAGE.png...  →  [{"file", "label", "probs"}, ...]
"use strict";
const fs = require("fs");
const ort = require("onnxruntime-node");
const { PNG } = require("pngjs");

// ModelProto field 14 is metadata_props: repeated StringStringEntryProto {string key = 1; string value = 2}.
// The README's function, verbatim (test_export_full_preprocess_node.py checks that it stays so).
function readMetadata(bytes) {  // bytes: Uint8Array of the .onnx file → {key: value}
  const utf8 = new TextDecoder();
  const varint = (pos) => {
    let value = 0, scale = 1, byte;
    do { byte = bytes[pos++]; value += (byte & 0x7f) * scale; scale *= 128; } while (byte & 0x80);
    return [value, pos];
  };
  const walk = (start, end, onField) => {  // onField(field, start, end) for each length-delimited field
    for (let pos = start, tag, len; pos < end;) {
      [tag, pos] = varint(pos);
      const wire = tag % 8;
      if (wire === 0) [, pos] = varint(pos);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) { [len, pos] = varint(pos); onField(Math.floor(tag / 8), pos, pos + len); pos += len; }
      else throw new Error(`not an ONNX file (wire type ${wire})`);
    }
  };
  const props = {};
  walk(0, bytes.length, (field, start, end) => {
    if (field !== 14) return;
    const entry = {};
    walk(start, end, (f, s, e) => { entry[f] = utf8.decode(bytes.subarray(s, e)); });
    props[entry[1]] = entry[2];
  });
  return props;
}

function rgb(png) {  // pngjs decodes to RGBA; these PNGs are opaque (a client composites alpha on white first)
  const out = new Uint8Array(png.width * png.height * 3);
  for (let i = 0, j = 0; i < png.data.length; i += 4, j += 3) {
    out[j] = png.data[i]; out[j + 1] = png.data[i + 1]; out[j + 2] = png.data[i + 2];
  }
  return out;
}

function softmax(logits, temperature) {  // softmax(logits / temperature): the spec's calibration
  const scaled = logits.map((v) => v / temperature);
  const top = Math.max(...scaled);
  const exp = scaled.map((v) => Math.exp(v - top));
  const sum = exp.reduce((a, b) => a + b, 0);
  return exp.map((v) => v / sum);
}

async function main() {
  const [modelPath, ...files] = process.argv.slice(2);
  const bytes = fs.readFileSync(modelPath);
  const meta = readMetadata(bytes);
  if (meta["clfkit.input_format"] !== "uint8_image") {
    throw new Error(`${modelPath}: clfkit.input_format is ${meta["clfkit.input_format"]}, not uint8_image`);
  }
  const names = JSON.parse(meta["class_names"]);
  const temperature = JSON.parse(meta["clfkit.spec"]).temperature ?? 1;  // a version-1 spec has none: 1
  const session = await ort.InferenceSession.create(modelPath);
  const results = [];
  for (const file of files) {  // one photo per call: H and W differ from photo to photo
    const png = PNG.sync.read(fs.readFileSync(file));
    const images = new ort.Tensor("uint8", rgb(png), [1, png.height, png.width, 3]);
    const { logits } = await session.run({ images });
    const probs = softmax(Array.from(logits.data), temperature);
    results.push({ file, label: names[probs.indexOf(Math.max(...probs))], probs });
  }
  console.log(JSON.stringify(results));
}

main().catch((err) => { console.error(err.message); process.exit(1); });
