// Vision layers drawn over the live view: people (skeleton + ergonomic risk), equipment and
// other detected objects, world-anchored ink, and safety zones (red while someone is inside). Markers are drawn by view.js. Each layer can be
// switched off from the side panel; `at([u, v])` maps normalized frame coordinates to the canvas.

export const LAYERS = ["markers", "people", "objects", "anchors", "zones"];

// BlazePose's 33-landmark skeleton.
const SKELETON = [
  [11, 12], [11, 13], [13, 15], [12, 14], [14, 16], [15, 17], [15, 19], [17, 19], [16, 18],
  [16, 20], [18, 20], [11, 23], [12, 24], [23, 24], [23, 25], [24, 26], [25, 27], [26, 28],
  [27, 29], [28, 30], [29, 31], [30, 32], [27, 31], [28, 32], [0, 1], [1, 2], [2, 3], [3, 7],
  [0, 4], [4, 5], [5, 6], [6, 8], [9, 10],
];

// REBA action levels: colour and words.
export const RISK = {
  negligible: ["#34c759", "negligible"],
  low: ["#8bd450", "low"],
  medium: ["#ffcc00", "medium"],
  high: ["#ff9500", "high"],
  "very high": ["#ff3b30", "very high"],
};

export function drawPeople(ctx, persons, at, label) {
  for (const person of persons || []) {
    const [colour] = person.risk ? RISK[person.risk.level] || ["#ffffff"] : ["#ffffff"];
    const points = (person.keypoints || []).map(([u, v, vis]) => [...at([u, v]), vis]);
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.fillStyle = colour;
    ctx.lineWidth = 3;
    ctx.lineCap = "round";
    for (const [a, b] of SKELETON) {
      const p = points[a];
      const q = points[b];
      if (!p || !q || p[2] < 0.5 || q[2] < 0.5) continue;
      ctx.beginPath();
      ctx.moveTo(p[0], p[1]);
      ctx.lineTo(q[0], q[1]);
      ctx.stroke();
    }
    for (const [x, y, vis] of points) {
      if (vis < 0.5) continue;
      ctx.beginPath();
      ctx.arc(x, y, 3, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.restore();
    if (person.bbox) {
      const [x, y] = at([person.bbox[0], person.bbox[1]]);
      const risk = person.risk ? ` · REBA ${person.risk.score} ${person.risk.level}` : "";
      label(`Person ${person.id}${risk}`, x + 60, y - 6, person.risk ? "#3a3f4a" : "#3a3f4a", colour);
    }
  }
}

export function drawObjects(ctx, objects, at, label) {
  for (const obj of objects || []) {
    ctx.save();
    ctx.strokeStyle = "#ffd60a";
    ctx.lineWidth = 2.5;
    ctx.beginPath();
    const outline = obj.corners && obj.corners.length >= 4
      ? obj.corners.map(at)
      : [[obj.bbox[0], obj.bbox[1]], [obj.bbox[2], obj.bbox[1]], [obj.bbox[2], obj.bbox[3]],
          [obj.bbox[0], obj.bbox[3]]].map(at);
    outline.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.stroke();
    ctx.restore();
    const top = outline.reduce((a, b) => (b[1] < a[1] ? b : a));
    const distance = obj.tvec ? ` · ${Math.hypot(...obj.tvec).toFixed(2)} m` : "";
    label(`${obj.label}${distance}`, top[0], top[1] - 8, "#6b5800");
  }
}

export function drawAnchors(ctx, anchors, at) {
  for (const anchor of anchors || []) {
    if (!anchor.visible || !anchor.uv || anchor.uv.length < 2) continue;
    const points = anchor.uv.map(at);
    ctx.save();
    ctx.strokeStyle = "#ff2d55";
    ctx.lineWidth = 4;
    ctx.lineJoin = "round";
    ctx.lineCap = "round";
    ctx.setLineDash([]);
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    // A small pin where the ink is fixed to the scene.
    ctx.fillStyle = "#ff2d55";
    ctx.beginPath();
    ctx.arc(points[0][0], points[0][1], 4, 0, 2 * Math.PI);
    ctx.fill();
    ctx.restore();
  }
}

export function drawZones(ctx, zones, events, at, label) {
  const occupied = new Set((events || []).map((e) => e.zone));
  for (const zone of zones || []) {
    if (!zone.polygon || zone.polygon.length < 3) continue;
    const points = zone.polygon.map(at);
    const inside = occupied.has(zone.name);
    ctx.save();
    ctx.strokeStyle = inside ? "#ff3b30" : "#ff9f0a";
    ctx.fillStyle = inside ? "rgba(255,59,48,0.22)" : "rgba(255,159,10,0.08)";
    ctx.lineWidth = inside ? 3 : 2;
    ctx.setLineDash(inside ? [] : [8, 6]);
    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
    ctx.restore();
    const top = points.reduce((a, b) => (b[1] < a[1] ? b : a));
    label(inside ? `${zone.name} · person inside` : zone.name, top[0], top[1] - 8,
      inside ? "#8a1c17" : "#6b4a00");
  }
}
