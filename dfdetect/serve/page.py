"""``GET /``: one small page to try the gate: an API key, a file, detect or recognize; it shows
the verdict, the faces' boxes over the image, the per-clip scores (trusted keys) and, for
recognition, what the provider answered or why it was not asked. No external resources."""

from __future__ import annotations

import html

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dfdetect gate</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
fieldset{border:1px solid #ccc;padding:1rem}label{display:block;margin:.4rem 0}
#verdict{font-size:1.6rem;font-weight:bold}.fake{color:#b00}.real{color:#070}.unknown{color:#a60}
canvas{max-width:100%;border:1px solid #ddd;margin-top:.5rem}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
</style></head><body>
<h1>dfdetect deepfake gate</h1>
<p>Model <code>__MODEL__</code>. Upload a face image or a short video: the gate says whether it is a
deepfake; <em>recognize</em> forwards a face it passes as real to __PROVIDER__.</p>
<form id="form"><fieldset>
<label>API key <input id="key" type="password" autocomplete="off" size="40"></label>
<label>File <input id="file" type="file" accept="image/*,video/*"></label>
<label><input type="radio" name="endpoint" value="detect" checked> detect</label>
<label><input type="radio" name="endpoint" value="recognize"> recognize (gate, then provider)</label>
<button id="send" type="submit">Send</button>
</fieldset></form>
<p id="status"></p><div id="verdict"></div><p id="reason"></p><div id="recognition"></div>
<canvas id="canvas" width="0" height="0"></canvas><div id="clips"></div>
<details><summary>answer</summary><pre id="raw"></pre></details>
<script>
const $ = id => document.getElementById(id);
$("key").value = sessionStorage.getItem("dfdetect-key") || "";
function text(el, value){ el.textContent = value; }
let shown = 0;  // the answer on display: a late image load of an earlier one draws nothing
function clearFaces(){
  shown += 1; const c = $("canvas"); c.width = c.height = 0;
  $("clips").innerHTML = ""; $("verdict").className = "";
}
function drawBoxes(file, tracks){
  const c = $("canvas"), ctx = c.getContext("2d"), mine = shown;
  if(!file.type.startsWith("image/")){ c.width = c.height = 0; return; }
  const img = new Image();
  img.onload = () => {
    if(mine !== shown) return;
    c.width = img.naturalWidth; c.height = img.naturalHeight; ctx.drawImage(img, 0, 0);
    ctx.lineWidth = Math.max(2, c.width / 200); ctx.strokeStyle = "#e00";
    for(const t of tracks || []) for(const clip of t.clips || []){
      const b = (clip.boxes || [])[0]; if(b) ctx.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
    }
  };
  img.src = URL.createObjectURL(file);
}
function clipTable(tracks){
  const rows = [];
  for(const t of tracks || []) for(const clip of t.clips || [])
    rows.push(`<tr><td>${t.track}</td><td>${clip.start}</td><td>${clip.p_fake === undefined ? "hidden" : clip.p_fake.toFixed(3)}</td></tr>`);
  return rows.length ? `<table><tr><th>face</th><th>clip start</th><th>P(fake)</th></tr>${rows.join("")}</table>` : "";
}
$("form").addEventListener("submit", async ev => {
  ev.preventDefault();
  const file = $("file").files[0];
  if(!file){ text($("status"), "choose a file first"); return; }
  sessionStorage.setItem("dfdetect-key", $("key").value);
  const endpoint = document.querySelector("input[name=endpoint]:checked").value;
  const body = new FormData(); body.append("file", file);
  text($("status"), "judging…"); text($("verdict"), ""); text($("reason"), ""); text($("recognition"), "");
  clearFaces();  // an error must not leave the previous image's boxes on the page
  let res, data;
  try {
    res = await fetch(`/v1/${endpoint}`, {method: "POST", headers: {"X-API-Key": $("key").value}, body});
    data = await res.json();
  } catch(e){ text($("status"), "request failed: " + e); return; }
  text($("raw"), JSON.stringify(data, null, 2));
  if(!res.ok){ text($("status"), `HTTP ${res.status}: ${data.detail || ""}`); return; }
  text($("status"), `HTTP ${res.status}, request ${data.request_id}`);
  const gate = endpoint === "recognize" ? data.gate : data;
  const v = $("verdict"); v.className = gate.verdict;
  text(v, gate.verdict + (gate.p_fake != null ? ` (P(fake) ${gate.p_fake.toFixed(3)}, threshold ${gate.threshold})` : ""));
  text($("reason"), gate.reason || "");
  if(endpoint === "recognize"){
    const a = data.provider_answer;
    text($("recognition"), data.forwarded || (a && a.cached)
      ? `${data.provider} answered: ${data.answer}${data.name ? " — " + data.name + " (" + data.confidence + ")" : ""} ${data.reason || ""}`
      : `${data.answer}: ${data.reason}`);
  }
  drawBoxes(file, gate.tracks); $("clips").innerHTML = clipTable(gate.tracks);
});
</script></body></html>
"""


def page_html(info: dict) -> str:
    model = info.get("model", {})
    name = f"{model.get('name', '?')}@{str(model.get('sha256') or '')[:12]}"
    provider = (info.get("serve") or {}).get("provider") or "no provider (recognize is off)"
    return PAGE.replace("__MODEL__", html.escape(name)).replace("__PROVIDER__", html.escape(str(provider)))
