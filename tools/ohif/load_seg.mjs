// Load a DICOM SEG the way OHIF Viewer 3.x does, in node, and print what it would show as JSON.
//
// Usage: node load_seg.mjs <adapter dir> <request.json>
//   <adapter dir>: a folder with package.json + package-lock.json pinning @cornerstonejs/adapters,
//                  @cornerstonejs/core, @cornerstonejs/tools and dcmjs (installed by `npm ci`).
//   request.json:  {"cases": {"<name>": {"seg": "<SEG file>", "series": [["<file>", ...], ...]}}};
//                  a case's series are OHIF's display sets in its own order (the order matters, as
//                  it does in OHIF). All cases run in one process (importing the adapter is slow).
//
// What it mirrors from OHIF 3.13.2 (extensions/cornerstone-dicom-seg, @ohif/core):
// - the display set a SEG is attached to: the FIRST display set, in display-set order, whose
//   series is listed in the SEG's ReferencedSeriesSequence and shares one of its instances
//   (DisplaySetService.getDisplaySetsForReferences, then `[0]`);
// - the call: adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId(referencedImageIds,
//   segImageId, {metadataProvider: cornerstone metaData, tolerance: 0.001, parserType:
//   'labelmap' for Label Map Segmentation Storage, else 'bitmap', frameImageIds, concurrency: 16});
// - the colours: segMetadata.data[i] (i > 0) gets dcmjs dicomlab2RGB(RecommendedDisplayCIELabValue)
//   * 255, rounded; the labelmap's value i is drawn with the colour of data[i].
// What stands in for the browser: a metadata provider and an image loader built from the files
// with dcmjs (uncompressed transfer syntaxes only; BINARY frames unpacked to one byte per pixel,
// as @cornerstonejs/dicom-image-loader returns them).
//
// Output (stdout, one JSON object): {"adapter_version", "cases": {name: result}}; a result holds the
// display set used, segMetadata (numbers, labels, colours by labelmap value), voxels and LPS
// centroids per labelmap value (computed from the labelmap images the adapter filled, with each
// referenced image's plane) and the adapter's own centroids; or "error": the message the adapter
// threw (as OHIF would show "failed to load").

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [adapterDir, requestPath] = process.argv.slice(2);
if (!adapterDir || !requestPath) {
  console.error('usage: node load_seg.mjs <adapter dir> <request.json>');
  process.exit(2);
}
const requireFrom = createRequire(path.join(path.resolve(adapterDir), 'package.json'));
const load = (name) => import(pathToFileURL(requireFrom.resolve(name)).href);
const adapters = await load('@cornerstonejs/adapters');
const core = await load('@cornerstonejs/core');
const dcmjsModule = await load('dcmjs');
const dcmjs = dcmjsModule.default ?? dcmjsModule;
const adapterVersion = JSON.parse(fs.readFileSync(
  path.join(path.dirname(requireFrom.resolve('@cornerstonejs/adapters/package.json')), 'package.json'),
)).version;

const LABELMAP_SOP_CLASS = '1.2.840.10008.5.1.4.1.1.66.7';

// Quiet the adapter's console chatter (warnings go to stderr, kept for the caller).
console.log = (...args) => console.error(...args);
const print = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

function readDataset(file) {
  const buffer = fs.readFileSync(file);
  const arrayBuffer = buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
  const message = dcmjs.data.DicomMessage.readFile(arrayBuffer);
  const dataset = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict);
  dataset._meta = dcmjs.data.DicomMetaDictionary.namifyDataset(message.meta);
  return dataset;
}

const first = (value) => (Array.isArray(value) ? value[0] : value);
const numbers = (value) => (Array.isArray(value) ? value : [value]).map(Number);

// One frame's plane of a classic or multi-frame (functional groups) image.
function framePlane(dataset, frame) {
  const shared = first(dataset.SharedFunctionalGroupsSequence) ?? {};
  const perFrame = dataset.PerFrameFunctionalGroupsSequence
    ? first([].concat(dataset.PerFrameFunctionalGroupsSequence)[frame - 1]) ?? {} : {};
  const pick = (seq, tag) => first(perFrame[seq])?.[tag] ?? first(shared[seq])?.[tag];
  const ipp = dataset.ImagePositionPatient ?? pick('PlanePositionSequence', 'ImagePositionPatient');
  const iop = dataset.ImageOrientationPatient ?? pick('PlaneOrientationSequence', 'ImageOrientationPatient');
  const spacing = dataset.PixelSpacing ?? pick('PixelMeasuresSequence', 'PixelSpacing');
  const thickness = dataset.SliceThickness ?? pick('PixelMeasuresSequence', 'SliceThickness');
  return { ipp: numbers(ipp), iop: numbers(iop), spacing: numbers(spacing), thickness: Number(thickness) };
}

// --- metadata provider and image loader (what OHIF's data source + dicom-image-loader give) ---
const meta = new Map(); // imageId -> {instance, plane, sop, frame, dataset}
const datasets = new Map(); // imageId base -> dataset

function addImage(imageId, dataset, frame) {
  const plane = framePlane(dataset, frame);
  // OHIF hands the adapter per-frame "instance" objects for multi-frame images (combineFrameInstance):
  // the dataset with that frame's geometry at the top level.
  const instance = { ...dataset, ImagePositionPatient: plane.ipp, ImageOrientationPatient: plane.iop,
    PixelSpacing: plane.spacing };
  meta.set(imageId, { instance, plane, dataset, frame });
}

function provider(type, imageId) {
  const entry = meta.get(imageId);
  if (!entry) return undefined;
  const { instance, plane, dataset } = entry;
  switch (type) {
    case 'instance':
      return instance;
    case 'generalImageModule':
      return { sopInstanceUID: dataset.SOPInstanceUID, instanceNumber: Number(dataset.InstanceNumber) };
    case 'generalSeriesModule':
      return { seriesInstanceUID: dataset.SeriesInstanceUID, modality: dataset.Modality,
        seriesNumber: Number(dataset.SeriesNumber) };
    case 'imagePlaneModule':
      return {
        frameOfReferenceUID: dataset.FrameOfReferenceUID, rows: Number(dataset.Rows),
        columns: Number(dataset.Columns), imageOrientationPatient: plane.iop,
        rowCosines: plane.iop.slice(0, 3), columnCosines: plane.iop.slice(3, 6),
        imagePositionPatient: plane.ipp, pixelSpacing: plane.spacing,
        rowPixelSpacing: plane.spacing[0], columnPixelSpacing: plane.spacing[1],
        sliceThickness: plane.thickness,
      };
    case 'imagePixelModule':
      return { samplesPerPixel: 1, photometricInterpretation: 'MONOCHROME2', rows: Number(dataset.Rows),
        columns: Number(dataset.Columns), bitsAllocated: Number(dataset.BitsAllocated),
        bitsStored: Number(dataset.BitsStored), highBit: Number(dataset.HighBit),
        pixelRepresentation: Number(dataset.PixelRepresentation ?? 0) };
    default:
      return undefined;
  }
}
core.metaData.addProvider(provider, 10000);

function framePixels(dataset, frame) {
  const rows = Number(dataset.Rows);
  const columns = Number(dataset.Columns);
  const n = rows * columns;
  const bytes = new Uint8Array(first(dataset.PixelData));
  const bits = Number(dataset.BitsAllocated);
  if (bits === 1) { // BINARY SEG: frames are packed bit-wise, back to back, LSB first
    const out = new Uint8Array(n);
    const start = (frame - 1) * n;
    for (let p = 0; p < n; p++) {
      const bit = start + p;
      out[p] = (bytes[bit >> 3] >> (bit & 7)) & 1;
    }
    return out;
  }
  if (bits === 8) return bytes.slice((frame - 1) * n, frame * n);
  if (bits === 16) return new Uint16Array(bytes.buffer, bytes.byteOffset + (frame - 1) * n * 2, n).slice();
  throw new Error(`unsupported BitsAllocated ${bits}`);
}

core.imageLoader.registerImageLoader('dicomfile', (imageId) => {
  const [base, query] = imageId.split('?');
  const dataset = datasets.get(base);
  const frame = query ? Number(new URLSearchParams(query).get('frame')) : 1;
  const promise = (async () => {
    const pixels = framePixels(dataset, frame);
    return { imageId, rows: Number(dataset.Rows), columns: Number(dataset.Columns), getPixelData: () => pixels };
  })();
  return { promise };
});

// --- one case: display sets in the order given, the SEG, the adapter call ---
async function loadCase(name, request) {
  const displaySets = request.series.map((files, s) => {
    const entries = [];
    files.forEach((file, f) => {
      const dataset = readDataset(file);
      const base = `dicomfile:${name}/s${s}f${f}`;
      datasets.set(base, dataset);
      const frames = Number(dataset.NumberOfFrames ?? 1);
      if (frames > 1) {
        for (let k = 1; k <= frames; k++) entries.push({ imageId: `${base}?frame=${k}`, dataset, frame: k });
      } else {
        entries.push({ imageId: base, dataset, frame: 1 });
      }
    });
    entries.forEach((e) => addImage(e.imageId, e.dataset, e.frame));
    // A reconstructable stack is shown in slice order (position along the normal).
    const key = (e) => {
      const { ipp, iop } = meta.get(e.imageId).plane;
      const normal = [iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
        iop[0] * iop[4] - iop[1] * iop[3]];
      return ipp[0] * normal[0] + ipp[1] * normal[1] + ipp[2] * normal[2];
    };
    entries.sort((a, b) => key(a) - key(b));
    return {
      SeriesInstanceUID: entries[0].dataset.SeriesInstanceUID,
      sops: new Set(entries.map((e) => e.dataset.SOPInstanceUID)),
      imageIds: entries.map((e) => e.imageId),
    };
  });

  const seg = readDataset(request.seg);
  const segImageId = `dicomfile:${name}/seg`;
  datasets.set(segImageId, seg);
  const referenced = new Map();
  for (const item of [].concat(seg.ReferencedSeriesSequence ?? [])) {
    referenced.set(item.SeriesInstanceUID,
      new Set([].concat(item.ReferencedInstanceSequence ?? []).map((r) => r.ReferencedSOPInstanceUID)));
  }
  const matches = displaySets.filter(
    (d) => [...d.sops].some((sop) => referenced.get(d.SeriesInstanceUID)?.has(sop)));
  const target = matches[0];
  const out = {
    referenced_series: [...referenced.keys()],
    matching_display_sets: matches.map((d) => d.SeriesInstanceUID),
    attached_to: target?.SeriesInstanceUID ?? null,
  };
  if (!target) return { ...out, error: 'no display set matches the SEG ReferencedSeriesSequence' };
  const frameCount = Number(seg.NumberOfFrames ?? 1);
  const frameImageIds = Array.from({ length: frameCount }, (_, k) => `${segImageId}?frame=${k + 1}`);
  meta.set(segImageId, { instance: seg, plane: null, dataset: seg, frame: 1 });
  const parserType = seg.SOPClassUID === LABELMAP_SOP_CLASS ? 'labelmap' : 'bitmap';

  let result;
  try {
    result = await adapters.adaptersSEG.Cornerstone3D.Segmentation.createFromDicomSegImageId(
      target.imageIds, segImageId,
      { metadataProvider: core.metaData, tolerance: 0.001, parserType, frameImageIds, concurrency: 16 },
    );
  } catch (err) {
    return { ...out, error: String(err?.message ?? err) };
  }

  // Colours as OHIF sets them (segMetadata.data[i], i > 0).
  const segments = {};
  result.segMetadata.data.forEach((item, i) => {
    if (i === 0 || !item) return;
    const lab = item.RecommendedDisplayCIELabValue;
    const rgb = lab ? dcmjs.data.Colors.dicomlab2RGB(numbers(lab)).map((v) => Math.round(255 * v)) : null;
    segments[i] = { SegmentNumber: Number(item.SegmentNumber), SegmentLabel: item.SegmentLabel ?? null, rgb };
  });

  // Voxels and LPS centroids per labelmap value, from the labelmap images the adapter filled.
  const stats = {};
  const images = result.labelMapImages.flat();
  images.forEach((image, index) => {
    const plane = provider('imagePlaneModule', target.imageIds[index]);
    const data = image.voxelManager ? image.voxelManager.getScalarData() : image.getPixelData();
    const { columns } = plane;
    for (let p = 0; p < data.length; p++) {
      const value = data[p];
      if (!value) continue;
      const row = Math.floor(p / columns);
      const col = p % columns;
      const st = (stats[value] ??= { voxels: 0, sum: [0, 0, 0] });
      st.voxels += 1;
      for (let a = 0; a < 3; a++) {
        st.sum[a] += plane.imagePositionPatient[a] + col * plane.columnPixelSpacing * plane.rowCosines[a]
          + row * plane.rowPixelSpacing * plane.columnCosines[a];
      }
    }
  });
  const labelmap = Object.fromEntries(Object.entries(stats).map(([value, st]) => [value, {
    voxels: st.voxels, centroid_lps: st.sum.map((v) => v / st.voxels),
  }]));
  const adapterCentroids = {};
  for (const [index, c] of result.centroids ?? []) {
    adapterCentroids[index] = { world: [c.world.x, c.world.y, c.world.z], count: c.count };
  }
  return {
    ...out,
    parser_type: parserType,
    labelmap_images: images.length,
    segments,
    labelmap,
    adapter_centroids: adapterCentroids,
  };
}

const cases = {};
for (const [name, request] of Object.entries(JSON.parse(fs.readFileSync(requestPath, 'utf8')).cases)) {
  cases[name] = await loadCase(name, request);
}
print({ adapter_version: adapterVersion, cases });
process.exit(0);
