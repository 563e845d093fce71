// dsprep review: the page.  Plain JavaScript, no build step.  Every request carries the token the server printed.
// Coordinates are dsprep's: 0-based continuous image pixels (a box covering a W x H image is 0, 0, W, H); the SVG
// draws the image at (0, 0, W, H) so shapes need no conversion.
'use strict';
(() => {
  const TOKEN = document.querySelector('meta[name="dsprep-token"]').content;
  const SVGNS = 'http://www.w3.org/2000/svg';
  const CHUNK = 240;          // grid cards / gallery crops added at a time
  const $ = (sel) => document.querySelector(sel);

  const S = {
    ds: null,                 // /api/dataset
    filters: {class: null, split: null, problem: null},
    list: [],                 // [[id, stem, objects, problems, rev]] passing the filters
    listStale: false,
    shown: 0,
    view: 'grid',
    gallery: [], galleryShown: 0,
    cur: null,                // the open image: {pos, id, rec, objects, undo, dirty, sel}
    tool: 'select',
    vb: {x: 0, y: 0, w: 1, h: 1},
    size: {w: 1, h: 1},       // the image's pixel size
    drag: null,
    quad: [],                 // corners clicked so far with the quad tool
    lastClass: null,
    colors: {},
  };

  // ---- talking to the server ------------------------------------------------------------------------------------

  function url(path, params = {}) {
    const q = new URLSearchParams(params);
    q.set('token', TOKEN);
    return `${path}?${q}`;
  }

  async function api(path, {method = 'GET', body, params} = {}) {
    const headers = {'X-Dsprep-Token': TOKEN};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(params ? `${path}?${new URLSearchParams(params)}` : path,
        {method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store'});
    } catch (e) {
      throw new Error('the dsprep review server does not answer (stopped?)');
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = {error: `${r.status} ${r.statusText}`}; }
    if (!r.ok) {
      const err = new Error(data.error || `${r.status} ${r.statusText}`);
      err.status = r.status;
      err.conflict = !!data.conflict;
      throw err;
    }
    return data;
  }

  function status(text, kind = '') {
    const s = $('#status');
    s.textContent = text;
    s.className = kind;
  }

  function node(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k === 'color') e.style.backgroundColor = v;  // CSSOM: the page's CSP allows no style attributes
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs = {}) {
    const e = document.createElementNS(SVGNS, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    return e;
  }

  function colorOf(name) {
    return S.colors[name] || '#9e9e9e';
  }

  async function learnColors(names) {
    const missing = names.filter((n) => !(n in S.colors));
    if (!missing.length) return;
    const q = new URLSearchParams();
    for (const n of missing) q.append('name', n);
    Object.assign(S.colors, await api(`/api/colors?${q}`));
  }

  // ---- side bar: counts and filters -----------------------------------------------------------------------------

  async function loadSummary() {
    S.ds = await api('/api/dataset');
    for (const c of S.ds.classes) S.colors[c.name] = c.color;
    $('#ds-name').textContent = `${S.ds.name} (${S.ds.format}): ${S.ds.images} images, ${S.ds.objects} objects`;
    const mode = $('#ds-mode');
    mode.hidden = S.ds.editable;
    mode.textContent = S.ds.can_save ? 'read-only' : `read-only (${S.ds.format})`;
    document.body.classList.toggle('readonly', !S.ds.editable);
    document.body.classList.toggle('polygons', S.ds.shape === 'polygon');
    renderSide();
    fillClassSelect($('#g-class'), S.ds.classes.filter((c) => c.objects > 0).map((c) => c.name));
  }

  function filterItem(key, value, label, count, color) {
    const on = S.filters[key] === value;
    return node('li', {class: on ? 'on' : null, dataset: {value}, title: label,
                       onclick: () => setFilter(key, on ? null : value)},
      color ? node('span', {class: 'swatch', color}) : null,
      node('span', {class: 'label', text: label}), node('span', {class: 'count', text: count}));
  }

  function renderSide() {
    const cls = $('#f-class');
    cls.textContent = '';
    for (const c of S.ds.classes) {
      cls.append(filterItem('class', c.name, c.name, `${c.objects} in ${c.images}`, c.color));
    }
    const sp = $('#f-split');
    sp.textContent = '';
    for (const s of S.ds.splits) sp.append(filterItem('split', s.name, s.name, s.images));
    if (!S.ds.splits.length) sp.append(node('li', {class: 'none', text: 'none listed'}));
    const pr = $('#f-problem');
    pr.textContent = '';
    if (S.ds.problem_images) pr.append(filterItem('problem', '*', 'any problem', S.ds.problem_images));
    for (const p of S.ds.problems) pr.append(filterItem('problem', p.kind, p.kind.replace(/_/g, ' '), p.images));
    if (!S.ds.problems.length) pr.append(node('li', {class: 'none', text: 'none found'}));
    const other = $('#other-problems');
    other.hidden = !S.ds.other_problem_count;
    if (S.ds.other_problem_count) {
      other.querySelector('summary').textContent = `${S.ds.other_problem_count} not tied to a shown image`;
      const ul = other.querySelector('ul');
      ul.textContent = '';
      for (const p of S.ds.other_problems) ul.append(node('li', {text: `${p.kind}: ${p.file} ${p.detail}`}));
    }
    $('#clear-filters').hidden = !Object.values(S.filters).some((v) => v !== null);
  }

  async function setFilter(key, value) {
    if (!(await leaveImage())) return;
    S.filters[key] = value;
    if (key === 'class' && value) {
      $('#g-class').value = value;
    }
    renderSide();
    await loadList();
    if (S.view === 'gallery' && key === 'class' && value) loadGallery();
    else show('grid');
  }

  // ---- the grid -------------------------------------------------------------------------------------------------

  async function loadList() {
    const params = {};
    for (const [k, v] of Object.entries(S.filters)) if (v !== null) params[k] = v;
    const res = await api('/api/images', {params});
    S.list = res.items;
    S.listStale = false;
    const f = Object.values(S.filters).some((v) => v !== null);
    $('#grid-count').textContent = f ? `${S.list.length} of ${res.total} images` : `${res.total} images`;
    $('#grid').textContent = '';
    S.shown = 0;
    renderMore();
  }

  function thumbUrl(item) {
    return url(`/api/images/${item[0]}/thumb`, {size: 256, boxes: $('#thumb-boxes').checked ? 1 : 0, v: item[4]});
  }

  function renderMore() {
    const grid = $('#grid');
    const end = Math.min(S.list.length, S.shown + CHUNK);
    const frag = document.createDocumentFragment();
    for (let pos = S.shown; pos < end; pos++) {
      const it = S.list[pos];
      frag.append(node('a', {class: 'card', href: '#', dataset: {id: it[0], pos}, title: it[1],
                             onclick: (ev) => { ev.preventDefault(); openImage(pos); }},
        node('img', {src: thumbUrl(it), loading: 'lazy', alt: it[1], decoding: 'async'}),
        node('span', {class: 'caption'}, node('span', {class: 'stem', text: it[1]}),
          node('span', {class: 'n', text: `${it[2]} obj`}),
          it[3] ? node('span', {class: 'warn', title: `${it[3]} problems`, text: `\u26a0 ${it[3]}`}) : null)));
    }
    grid.append(frag);
    S.shown = end;
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && S.view === 'grid' && S.shown < S.list.length) renderMore();
  }, {rootMargin: '600px'}).observe($('#grid-more'));

  // ---- views ----------------------------------------------------------------------------------------------------

  function show(view) {
    S.view = view;
    for (const v of ['grid', 'gallery', 'image']) $(`#${v}-view`).hidden = v !== view;
    $('#tab-grid').classList.toggle('on', view !== 'gallery');
    $('#tab-gallery').classList.toggle('on', view === 'gallery');
    if (view !== 'image') history.replaceState(null, '', location.pathname + location.search);
  }

  async function toGrid() {
    if (!(await leaveImage())) return;
    show('grid');
    if (S.listStale) await loadList();
  }

  // ---- the gallery ----------------------------------------------------------------------------------------------

  function fillClassSelect(select, names, extra) {
    const keep = select.value;
    select.textContent = '';
    for (const n of names) select.append(node('option', {value: n, text: n}));
    if (extra) select.append(node('option', {value: extra.value, text: extra.text}));
    if (names.includes(keep)) select.value = keep;
  }

  async function loadGallery() {
    if (!(await leaveImage())) return;
    show('gallery');
    const cls = $('#g-class').value || S.filters.class;
    const box = $('#gallery');
    box.textContent = '';
    S.gallery = [];
    S.galleryShown = 0;
    if (!cls) { $('#g-count').textContent = 'no objects'; return; }
    const [sort, order] = $('#g-sort').value.split(':');
    const res = await api('/api/gallery', {params: {class: cls, sort, order}});
    S.gallery = res.items;
    $('#g-count').textContent = `${S.gallery.length} objects`;
    renderGalleryMore();
  }

  function renderGalleryMore() {
    const box = $('#gallery');
    const end = Math.min(S.gallery.length, S.galleryShown + CHUNK);
    const frag = document.createDocumentFragment();
    for (let j = S.galleryShown; j < end; j++) {
      const [id, k, area, aspect] = S.gallery[j];
      frag.append(node('a', {class: 'crop', href: '#', dataset: {id, k},
                             title: `image ${id}, object ${k}: ${Math.round(area)} px\u00b2, w/h ${aspect.toFixed(2)}`,
                             onclick: (ev) => { ev.preventDefault(); openById(id, k); }},
        node('img', {src: url(`/api/images/${id}/objects/${k}/crop`, {size: 128}), loading: 'lazy', alt: ''})));
    }
    box.append(frag);
    S.galleryShown = end;
  }

  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && S.view === 'gallery' && S.galleryShown < S.gallery.length) {
      renderGalleryMore();
    }
  }, {rootMargin: '600px'}).observe($('#gallery-more'));

  async function openById(id, k) {
    let pos = S.list.findIndex((it) => it[0] === id);
    if (pos < 0) {  // not among the filtered images: walk the whole data set instead
      for (const key of Object.keys(S.filters)) S.filters[key] = null;
      renderSide();
      await loadList();
      pos = S.list.findIndex((it) => it[0] === id);
    }
    if (pos >= 0) await openImage(pos, k);
  }

  // ---- the image view: loading ----------------------------------------------------------------------------------

  function boxPoints(b) {
    return [[b[0], b[1]], [b[2], b[1]], [b[2], b[3]], [b[0], b[3]]];
  }

  function points(o) {
    return o.polygon ? o.polygon : boxPoints(o.box);
  }

  function area(pts) {  // shoelace
    let s = 0;
    for (let j = 0; j < pts.length; j++) {
      const p = pts[j];
      const q = pts[(j + 1) % pts.length];
      s += p[0] * q[1] - q[0] * p[1];
    }
    return Math.abs(s) / 2;
  }

  function copyObjects(objs) {
    return objs.map((o) => ({...o, box: o.box && o.box.slice(),
                             polygon: o.polygon && o.polygon.map((p) => p.slice())}));
  }

  async function openImage(pos, focus = null) {
    if (pos < 0 || pos >= S.list.length) return;
    if (!(await leaveImage())) return;
    const id = S.list[pos][0];
    let rec;
    try {
      rec = await api(`/api/images/${id}`);
    } catch (e) {
      status(e.message, 'error');
      return;
    }
    S.cur = {pos, id, rec: null, objects: [], undo: [], dirty: false, sel: -1};
    setRecord(rec);
    show('image');
    history.replaceState(null, '', `${location.pathname}${location.search}#image=${id}`);
    $('#position').textContent = `${pos + 1} / ${S.list.length}`;
    setTool('select');
    hideMessage();
    const photo = $('#photo');
    S.size = {w: rec.width || 1, h: rec.height || 1};
    photo.setAttribute('width', S.size.w);
    photo.setAttribute('height', S.size.h);
    photo.setAttribute('href', url(`/api/images/${id}/image`));
    fit();
    const img = new Image();  // the real pixel size (an XML size may disagree with the image)
    img.onload = () => {
      if (!S.cur || S.cur.id !== id) return;
      if (img.naturalWidth !== S.size.w || img.naturalHeight !== S.size.h) {
        S.size = {w: img.naturalWidth, h: img.naturalHeight};
        photo.setAttribute('width', S.size.w);
        photo.setAttribute('height', S.size.h);
        if (focus === null) fit();
      }
    };
    img.src = url(`/api/images/${id}/image`);
    if (focus !== null && focus < S.cur.objects.length) {
      select(focus);
      zoomTo(focus);
    }
    if (pos + 1 < S.list.length) new Image().src = url(`/api/images/${S.list[pos + 1][0]}/image`);
    loadHistory().catch(() => {});
  }

  function setRecord(rec) {
    S.cur.rec = rec;
    S.cur.objects = rec.objects.map((o, k) => ({
      src: k, name: o.name, difficult: o.difficult, truncated: o.truncated, problems: o.problems,
      box: S.ds.shape === 'polygon' ? null : o.box.slice(),
      polygon: S.ds.shape === 'polygon' ? (o.polygon || boxPoints(o.box)).map((p) => p.slice()) : null,
    }));
    S.cur.undo = [];
    S.cur.dirty = false;
    S.cur.sel = -1;
    learnColors(rec.objects.map((o) => o.name)).then(renderShapes, () => {});
    $('#iv-title').textContent = rec.stem;
    const where = [rec.split && `split ${rec.split}`, `${rec.width} \u00d7 ${rec.height}`, rec.annotation || rec.image];
    $('#iv-info').textContent = where.filter(Boolean).join(' \u00b7 ');
    const probs = $('#iv-problems');
    probs.textContent = '';
    for (const p of rec.problems) {
      probs.append(node('li', {class: p.object !== null ? 'link' : null,
                               onclick: p.object !== null ? () => { select(p.object); zoomTo(p.object); } : null},
        node('b', {text: p.kind.replace(/_/g, ' ')}), ` ${p.detail}`));
    }
    $('#iv-problems-title').hidden = !rec.problems.length;
    changed();
  }

  // ---- the image view: drawing ----------------------------------------------------------------------------------

  function ppu() {  // screen pixels per image pixel
    const m = $('#canvas').getScreenCTM();
    return m ? m.a : 1;
  }

  function renderShapes() {
    if (!S.cur) return;
    const g = $('#shapes');
    g.textContent = '';
    // largest first: a small object inside a big one stays on top, so it can be clicked
    const order = S.cur.objects.map((o, k) => [area(points(o)), k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, k] of order) g.append(shapeOf(S.cur.objects[k], k));
    renderHandles();
    renderList();
    renderEditor();
  }

  function shapeOf(o, k) {
    const color = colorOf(o.name);
    const grp = svg('g', {class: `obj${k === S.cur.sel ? ' sel' : ''}${o.difficult ? ' difficult' : ''}` +
                                 `${o.problems && o.problems.length ? ' problem' : ''}`, 'data-k': k});
    const pts = points(o);
    const label = o.name + (o.difficult ? '?' : '');
    const tip = svg('title');
    tip.textContent = `#${k} ${label}`;
    grp.append(tip);
    grp.append(svg('polygon', {points: pts.map((p) => p.join(',')).join(' '), stroke: color, fill: color}));
    const scale = ppu();
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    // a name is drawn when it fits across its object on screen (crowded scenes stay readable), and always for the
    // selected object; every object names itself on hover
    if (k === S.cur.sel || (Math.max(...xs) - Math.min(...xs)) * scale >= 7 * label.length + 4) {
      const s = 1 / scale;
      const t = svg('text', {x: Math.min(...xs), y: Math.min(...ys) - 3 * s, 'font-size': 12 * s,
                             'stroke-width': 3 * s, fill: color});
      t.textContent = label;
      grp.append(t);
    }
    return grp;
  }

  function updateShape(k) {
    const old = $(`#shapes .obj[data-k="${k}"]`);
    if (old) old.replaceWith(shapeOf(S.cur.objects[k], k));
    renderHandles();
    renderEditorGeometry();
  }

  const BOX_HANDLES = {nw: [0, 1], n: [null, 1], ne: [2, 1], e: [2, null], se: [2, 3], s: [null, 3], sw: [0, 3],
                       w: [0, null]};

  function renderHandles() {
    const g = $('#handles');
    g.textContent = '';
    if (!S.cur || S.cur.sel < 0 || !S.cur.rec.editable) return;
    const o = S.cur.objects[S.cur.sel];
    const r = 5 / ppu();
    if (o.box) {
      const b = o.box;
      for (const [h, [ix, iy]] of Object.entries(BOX_HANDLES)) {
        const cx = ix === null ? (b[0] + b[2]) / 2 : b[ix];
        const cy = iy === null ? (b[1] + b[3]) / 2 : b[iy];
        g.append(svg('rect', {class: `handle h-${h}`, 'data-h': h, x: cx - r, y: cy - r, width: 2 * r,
                              height: 2 * r, 'stroke-width': 1.5 / ppu()}));
      }
    } else {
      o.polygon.forEach((p, j) => g.append(svg('circle', {class: 'handle', 'data-h': j, cx: p[0], cy: p[1], r,
                                                             'stroke-width': 1.5 / ppu()})));
    }
  }

  function renderList() {
    const ol = $('#objects');
    ol.textContent = '';
    S.cur.objects.forEach((o, k) => {
      ol.append(node('li', {class: k === S.cur.sel ? 'on' : null, dataset: {k}, onclick: () => select(k)},
        node('span', {class: 'swatch', color: colorOf(o.name)}),
        node('span', {class: 'label', text: o.name}),
        o.difficult ? node('span', {class: 'flag', title: 'difficult', text: '?'}) : null,
        o.src === null ? node('span', {class: 'flag', title: 'new', text: 'new'}) : null,
        o.problems && o.problems.length ? node('span', {class: 'warn', title: o.problems.join(', '), text: '\u26a0'})
          : null));
    });
    $('#obj-count').textContent = `(${S.cur.objects.length})`;
  }

  function renderEditor() {
    const ed = $('#editor');
    if (!S.cur || S.cur.sel < 0) { ed.hidden = true; return; }
    ed.hidden = false;
    const o = S.cur.objects[S.cur.sel];
    $('#sel-index').textContent = `#${S.cur.sel}`;
    const names = S.ds.classes.map((c) => c.name);
    if (!names.includes(o.name)) names.push(o.name);
    const sel = $('#sel-class');
    fillClassSelect(sel, names, S.cur.rec.editable ? {value: '\u0000new', text: 'new class\u2026'} : null);
    sel.value = o.name;
    $('#new-class-row').hidden = true;
    $('#sel-difficult').checked = !!o.difficult;
    $('#sel-truncated').checked = !!o.truncated;
    $('#sel-truncated-row').hidden = S.ds.shape === 'polygon';
    for (const id of ['#sel-class', '#sel-difficult', '#sel-truncated', '#sel-delete']) {
      $(id).disabled = !S.cur.rec.editable;
    }
    renderEditorGeometry();
  }

  function renderEditorGeometry() {
    if (!S.cur || S.cur.sel < 0) return;
    const o = S.cur.objects[S.cur.sel];
    const r = (v) => Math.round(v * 100) / 100;
    $('#sel-geom').textContent = o.box ? `box ${o.box.map(r).join(', ')}`
      : `corners ${o.polygon.map((p) => `(${r(p[0])}, ${r(p[1])})`).join(' ')}`;
  }

  function select(k) {
    if (!S.cur) return;
    S.cur.sel = k;
    renderShapes();
    const li = $(`#objects li[data-k="${k}"]`);
    if (li) li.scrollIntoView({block: 'nearest'});
  }

  // ---- zoom and pan ---------------------------------------------------------------------------------------------

  function setViewBox() {
    const v = S.vb;
    $('#canvas').setAttribute('viewBox', `${v.x} ${v.y} ${v.w} ${v.h}`);
    if (S.cur) renderShapes();
  }

  function fit() {
    const wrap = $('#canvas-wrap').getBoundingClientRect();
    const cw = Math.max(wrap.width, 10);
    const ch = Math.max(wrap.height, 10);
    const scale = Math.min(cw / S.size.w, ch / S.size.h);
    S.vb = {w: cw / scale, h: ch / scale, x: 0, y: 0};
    S.vb.x = (S.size.w - S.vb.w) / 2;
    S.vb.y = (S.size.h - S.vb.h) / 2;
    setViewBox();
  }

  function zoom(f, cx, cy) {
    const v = S.vb;
    if (cx === undefined) { cx = v.x + v.w / 2; cy = v.y + v.h / 2; }
    const w = Math.min(Math.max(v.w / f, 4), Math.max(S.size.w, S.size.h) * 8);
    const k = w / v.w;
    S.vb = {x: cx - (cx - v.x) * k, y: cy - (cy - v.y) * k, w, h: v.h * k};
    setViewBox();
  }

  function zoomTo(k) {
    const pts = points(S.cur.objects[k]);
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs); const x1 = Math.max(...xs);
    const y0 = Math.min(...ys); const y1 = Math.max(...ys);
    const wrap = $('#canvas-wrap').getBoundingClientRect();
    const aspect = Math.max(wrap.width, 10) / Math.max(wrap.height, 10);
    let w = Math.max((x1 - x0) * 3, 64);
    let h = Math.max((y1 - y0) * 3, 64);
    if (w / h > aspect) h = w / aspect; else w = h * aspect;
    S.vb = {x: (x0 + x1) / 2 - w / 2, y: (y0 + y1) / 2 - h / 2, w, h};
    setViewBox();
  }

  function toImage(ev) {
    const m = $('#canvas').getScreenCTM().inverse();
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(m);
    return [p.x, p.y];
  }

  // ---- editing --------------------------------------------------------------------------------------------------

  function remember() {
    S.cur.undo.push({objects: copyObjects(S.cur.objects), sel: S.cur.sel});
    if (S.cur.undo.length > 500) S.cur.undo.shift();
  }

  function changed() {
    S.cur.dirty = S.cur.undo.length > 0;
    $('#undo').disabled = !S.cur.undo.length;
    $('#save').disabled = !S.cur.dirty || !S.cur.rec.editable;
    $('#save').classList.toggle('hot', S.cur.dirty);
    if (S.cur.dirty) status('unsaved changes', 'dirty');
  }

  function edit(fn) {
    if (!S.cur || !S.cur.rec.editable) return;
    remember();
    fn();
    changed();
    renderShapes();
  }

  function undo() {
    if (!S.cur || !S.cur.undo.length) return;
    const last = S.cur.undo.pop();
    S.cur.objects = last.objects;
    S.cur.sel = Math.min(last.sel, S.cur.objects.length - 1);
    changed();
    if (!S.cur.dirty) status('');
    renderShapes();
  }

  function setClass(name) {
    name = name.trim();
    if (!name || S.cur.sel < 0) return;
    const k = S.cur.sel;
    if (S.cur.objects[k].name === name) return;
    S.lastClass = name;
    edit(() => { S.cur.objects[k].name = name; });
    learnColors([name]).then(renderShapes, () => {});  // a new class gets its colour as soon as the server says it
  }

  function deleteSelected() {
    if (!S.cur || S.cur.sel < 0) return;
    const k = S.cur.sel;
    edit(() => {
      S.cur.objects.splice(k, 1);
      S.cur.sel = -1;
    });
  }

  function clampBox(b) {
    const W = S.size.w; const H = S.size.h;
    let [x0, y0, x1, y1] = [Math.min(b[0], b[2]), Math.min(b[1], b[3]), Math.max(b[0], b[2]), Math.max(b[1], b[3])];
    x0 = Math.max(0, Math.min(x0, W - 1)); y0 = Math.max(0, Math.min(y0, H - 1));
    x1 = Math.min(W, Math.max(x1, x0 + 1)); y1 = Math.min(H, Math.max(y1, y0 + 1));
    return [x0, y0, x1, y1];
  }

  function defaultClass() {
    if (S.cur.sel >= 0) return S.cur.objects[S.cur.sel].name;
    return S.lastClass || S.filters.class || (S.ds.classes[0] && S.ds.classes[0].name) || 'object';
  }

  function addObject(pts) {
    const name = defaultClass();
    const xs = pts.map((p) => p[0]);
    const ys = pts.map((p) => p[1]);
    const o = {src: null, name, difficult: 0, truncated: false, problems: []};
    if (S.ds.shape === 'polygon') o.polygon = pts.map((p) => [Math.round(p[0]), Math.round(p[1])]);
    else o.box = clampBox([Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys)].map(Math.round));
    edit(() => {
      S.cur.objects.push(o);
      S.cur.sel = S.cur.objects.length - 1;
    });
    setTool('select');
  }

  function setTool(t) {
    if (t === 'quad' && S.ds.shape !== 'polygon') return;
    if (t !== 'select' && (!S.cur || !S.cur.rec.editable)) return;
    S.tool = t;
    S.quad = [];
    const d = $('#draft');
    d.hidden = true;
    d.setAttribute('points', '');
    for (const b of document.querySelectorAll('.tool')) b.classList.toggle('on', b.id === `tool-${t}`);
    $('#canvas').dataset.tool = t;
  }

  function drawDraft(pts, closed) {
    const d = $('#draft');
    d.hidden = false;
    d.setAttribute('points', (closed ? [...pts, pts[0]] : pts).map((p) => p.join(',')).join(' '));
    d.setAttribute('stroke-width', 1.5 / ppu());
  }

  function onDown(ev) {
    if (!S.cur || (ev.button !== 0 && ev.button !== 1)) return;
    ev.preventDefault();
    const p = toImage(ev);
    const editable = S.cur.rec.editable;
    if (ev.button === 1 || ev.shiftKey && S.tool === 'select') {
      S.drag = {kind: 'pan', start: [ev.clientX, ev.clientY], vb: {...S.vb}};
      return;
    }
    if (S.tool === 'box') {
      S.drag = {kind: 'draw', start: p, now: p};
      return;
    }
    if (S.tool === 'quad') {
      S.quad.push(p.map(Math.round));
      if (S.quad.length === 4) {
        const pts = S.quad;
        setTool('quad');
        addObject(pts);
      } else {
        drawDraft(S.quad, false);
      }
      return;
    }
    const handle = ev.target.closest('.handle');
    const shape = ev.target.closest('.obj');
    if (handle && editable) {
      S.drag = {kind: 'handle', h: handle.dataset.h, start: p, moved: false, k: S.cur.sel,
                orig: copyObjects([S.cur.objects[S.cur.sel]])[0]};
    } else if (shape) {
      const k = +shape.dataset.k;
      if (k !== S.cur.sel) select(k);
      if (editable) S.drag = {kind: 'move', start: p, moved: false, k, orig: copyObjects([S.cur.objects[k]])[0]};
    } else {
      if (S.cur.sel >= 0) select(-1);
      S.drag = {kind: 'pan', start: [ev.clientX, ev.clientY], vb: {...S.vb}};
    }
  }

  function onMove(ev) {
    if (S.tool === 'quad' && S.quad.length) {
      drawDraft([...S.quad, toImage(ev)], false);
      return;
    }
    const d = S.drag;
    if (!d) return;
    if (d.kind === 'pan') {
      const s = 1 / ppu();
      S.vb = {...d.vb, x: d.vb.x - (ev.clientX - d.start[0]) * s, y: d.vb.y - (ev.clientY - d.start[1]) * s};
      $('#canvas').setAttribute('viewBox', `${S.vb.x} ${S.vb.y} ${S.vb.w} ${S.vb.h}`);
      return;
    }
    const p = toImage(ev);
    if (d.kind === 'draw') {
      d.now = p;
      drawDraft(boxPoints([d.start[0], d.start[1], p[0], p[1]]), true);
      return;
    }
    const dx = Math.round(p[0] - d.start[0]);
    const dy = Math.round(p[1] - d.start[1]);
    if (!d.moved) {
      if (Math.abs(p[0] - d.start[0]) * ppu() < 2 && Math.abs(p[1] - d.start[1]) * ppu() < 2) return;
      remember();  // one undo step per drag
      d.moved = true;
    }
    const o = S.cur.objects[d.k];
    if (d.kind === 'move') {
      if (d.orig.box) {
        const b = d.orig.box;
        const mx = Math.min(Math.max(dx, -b[0]), S.size.w - b[2]);
        const my = Math.min(Math.max(dy, -b[1]), S.size.h - b[3]);
        o.box = [b[0] + mx, b[1] + my, b[2] + mx, b[3] + my];
      } else {
        o.polygon = d.orig.polygon.map((q) => [q[0] + dx, q[1] + dy]);
      }
    } else if (o.box) {
      const [ix, iy] = BOX_HANDLES[d.h];
      const b = d.orig.box.slice();
      const cx = Math.round(Math.min(Math.max(p[0], 0), S.size.w));
      const cy = Math.round(Math.min(Math.max(p[1], 0), S.size.h));
      if (ix !== null) b[ix] = cx;
      if (iy !== null) b[iy] = cy;
      o.box = b;
    } else {
      const j = +d.h;
      o.polygon = d.orig.polygon.map((q) => q.slice());
      o.polygon[j] = [Math.round(Math.min(Math.max(p[0], 0), S.size.w)),
                      Math.round(Math.min(Math.max(p[1], 0), S.size.h))];
    }
    updateShape(d.k);
  }

  function onUp() {
    const d = S.drag;
    S.drag = null;
    if (!d) return;
    if (d.kind === 'draw') {
      $('#draft').hidden = true;
      const w = Math.abs(d.now[0] - d.start[0]);
      const h = Math.abs(d.now[1] - d.start[1]);
      if (w * ppu() < 3 || h * ppu() < 3 || w < 1 || h < 1) return;  // a click, not a box
      const b = clampBox([d.start[0], d.start[1], d.now[0], d.now[1]].map(Math.round));
      addObject(boxPoints(b));
      return;
    }
    if ((d.kind === 'move' || d.kind === 'handle') && d.moved) {
      const o = S.cur.objects[d.k];
      if (o.box) o.box = clampBox(o.box);
      changed();
      renderShapes();
    } else if (d.kind === 'pan') {
      renderShapes();
    }
  }

  // ---- saving ---------------------------------------------------------------------------------------------------

  function payload() {
    return S.cur.objects.map((o) => {
      const out = {src: o.src, name: o.name, difficult: o.difficult ? (o.difficult | 0) : 0, truncated: !!o.truncated};
      if (o.polygon) out.polygon = o.polygon; else out.box = o.box;
      return out;
    });
  }

  async function save() {
    if (!S.cur || !S.cur.dirty || !S.cur.rec.editable) return true;
    $('#save').disabled = true;
    status('saving\u2026');
    try {
      const rec = await api(`/api/images/${S.cur.id}/save`, {method: 'POST',
                                                              body: {version: S.cur.rec.version, objects: payload()}});
      const sel = S.cur.sel;
      setRecord(rec);
      if (sel >= 0 && sel < S.cur.objects.length) select(sel);
      status(rec.saved ? `saved ${rec.annotation} (the previous file is kept in .dsprep-history/)` : 'nothing to save',
             'ok');
      S.list[S.cur.pos] = [S.cur.id, rec.stem, rec.objects.length, rec.problems.length, rec.rev];
      S.listStale = true;
      hideMessage();
      loadSummary().catch(() => {});
      loadHistory().catch(() => {});
      return true;
    } catch (e) {
      changed();
      if (e.conflict) {
        message(`Not saved: ${e.message}`, [['reload from disk (drops your edits)', reloadImage],
                                            ['keep editing', hideMessage]], 'error');
      } else {
        message(`Not saved: ${e.message}`, [['ok', hideMessage]], 'error');
      }
      status('not saved', 'error');
      return false;
    }
  }

  async function reloadImage() {
    if (!S.cur) return;
    S.cur.dirty = false;
    S.cur.undo = [];
    hideMessage();
    const pos = S.cur.pos;
    S.cur = null;
    await openImage(pos);
    status('reloaded from disk', 'ok');
  }

  // Resolves to true when the open image may be left (nothing unsaved, or the user chose).
  function leaveImage() {
    if (!S.cur || !S.cur.dirty) return Promise.resolve(true);
    return new Promise((resolve) => {
      message('This image has unsaved changes.', [
        ['save', async () => { hideMessage(); resolve(await save()); }],
        ['discard', () => { S.cur.dirty = false; S.cur.undo = []; hideMessage(); status(''); resolve(true); }],
        ['stay', () => { hideMessage(); resolve(false); }]], 'warn');
    });
  }

  function message(text, actions, kind) {
    const m = $('#message');
    m.hidden = false;
    m.className = kind || '';
    m.querySelector('span').textContent = text;
    const a = m.querySelector('.actions');
    a.textContent = '';
    for (const [label, fn] of actions) a.append(node('button', {type: 'button', text: label, onclick: fn}));
  }

  function hideMessage() {
    $('#message').hidden = true;
  }

  async function loadHistory() {
    const ul = $('#history');
    ul.textContent = '';
    const note = $('#history-note');
    if (!S.cur || !S.cur.rec.annotation) { note.textContent = 'no annotation file'; return; }
    const id = S.cur.id;
    const res = await api(`/api/images/${id}/history`);
    if (!S.cur || S.cur.id !== id) return;
    note.textContent = res.items.length ? 'each save keeps the file it replaced:' : 'none yet';
    for (const it of res.items.slice(0, 20)) {
      ul.append(node('li', {}, node('span', {text: it.saved.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d).*/,
                                                                   '$1-$2-$3 $4:$5:$6 UTC')}),
        S.cur.rec.editable ? node('button', {type: 'button', text: 'restore', dataset: {entry: it.entry},
                                             onclick: () => restore(it.entry)}) : null));
    }
  }

  async function restore(entry) {
    if (!(await leaveImage())) return;
    try {
      const rec = await api(`/api/images/${S.cur.id}/restore`, {method: 'POST',
                                                                 body: {version: S.cur.rec.version, entry}});
      setRecord(rec);
      status(`restored the version saved ${entry.split('.').slice(-2).join('.')}`, 'ok');
      S.listStale = true;
      loadSummary().catch(() => {});
      loadHistory().catch(() => {});
    } catch (e) {
      message(`Not restored: ${e.message}`, e.conflict ? [['reload from disk', reloadImage], ['ok', hideMessage]]
        : [['ok', hideMessage]], 'error');
    }
  }

  // ---- wiring ---------------------------------------------------------------------------------------------------

  const canvas = $('#canvas');
  canvas.addEventListener('mousedown', onDown);
  window.addEventListener('mousemove', onMove);
  window.addEventListener('mouseup', onUp);
  canvas.addEventListener('wheel', (ev) => {
    ev.preventDefault();
    const p = toImage(ev);
    zoom(ev.deltaY < 0 ? 1.25 : 0.8, p[0], p[1]);
  }, {passive: false});
  new ResizeObserver(() => { if (S.view === 'image' && S.cur) renderShapes(); }).observe($('#canvas-wrap'));

  $('#tab-grid').onclick = toGrid;
  $('#tab-gallery').onclick = loadGallery;
  $('#g-class').onchange = loadGallery;
  $('#g-sort').onchange = loadGallery;
  $('#clear-filters').onclick = async () => {
    if (!(await leaveImage())) return;
    for (const key of Object.keys(S.filters)) S.filters[key] = null;
    renderSide();
    await loadList();
    show('grid');
  };
  $('#thumb-boxes').onchange = () => { $('#grid').textContent = ''; S.shown = 0; renderMore(); };
  $('#back').onclick = toGrid;
  $('#prev').onclick = () => S.cur && openImage(S.cur.pos - 1);
  $('#next').onclick = () => S.cur && openImage(S.cur.pos + 1);
  $('#zoom-in').onclick = () => zoom(1.5);
  $('#zoom-out').onclick = () => zoom(1 / 1.5);
  $('#zoom-fit').onclick = fit;
  $('#undo').onclick = undo;
  $('#save').onclick = save;
  $('#tool-select').onclick = () => setTool('select');
  $('#tool-box').onclick = () => setTool('box');
  $('#tool-quad').onclick = () => setTool('quad');
  $('#sel-class').onchange = (ev) => {
    ev.target.blur();  // else the arrow keys meant for the next image would change the class again
    if (ev.target.value === '\u0000new') {
      $('#new-class-row').hidden = false;
      $('#new-class').focus();
    } else {
      setClass(ev.target.value);
    }
  };
  const addClass = () => {
    const name = $('#new-class').value.trim();
    if (!name) return;
    if (S.ds.shape === 'polygon' && /\s/.test(name)) {
      status('a DOTA class name cannot contain spaces', 'error');
      return;
    }
    $('#new-class').value = '';
    setClass(name);
  };
  $('#new-class-ok').onclick = addClass;
  $('#new-class').addEventListener('keydown', (ev) => { if (ev.key === 'Enter') addClass(); ev.stopPropagation(); });
  $('#sel-difficult').onchange = (ev) => {
    const k = S.cur.sel;
    edit(() => { S.cur.objects[k].difficult = ev.target.checked ? 1 : 0; });
  };
  $('#sel-truncated').onchange = (ev) => {
    const k = S.cur.sel;
    edit(() => { S.cur.objects[k].truncated = ev.target.checked; });
  };
  $('#sel-delete').onclick = deleteSelected;

  window.addEventListener('keydown', (ev) => {
    const typing = ev.target.matches('input[type=text], select, textarea');
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 's') {
      ev.preventDefault();
      if (S.view === 'image') save();
      return;
    }
    if (typing || S.view !== 'image' || !S.cur) return;
    if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === 'z') { ev.preventDefault(); undo(); return; }
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const k = ev.key;
    if (k === 'ArrowRight' || k === 'PageDown') openImage(S.cur.pos + 1);
    else if (k === 'ArrowLeft' || k === 'PageUp') openImage(S.cur.pos - 1);
    else if (k === '+' || k === '=') zoom(1.5);
    else if (k === '-' || k === '_') zoom(1 / 1.5);
    else if (k === '0') fit();
    else if (k === 'z' && S.cur.sel >= 0) zoomTo(S.cur.sel);
    else if (k === 'Delete' || k === 'Backspace') deleteSelected();
    else if (k === 'b') setTool('box');
    else if (k === 'q') setTool('quad');
    else if (k === 'v') setTool('select');
    else if (k === 'Escape') {
      if (S.tool !== 'select') setTool('select');
      else if (S.cur.sel >= 0) select(-1);
      else toGrid();
    } else return;
    ev.preventDefault();
  });

  window.addEventListener('beforeunload', (ev) => {
    if (S.cur && S.cur.dirty) { ev.preventDefault(); ev.returnValue = ''; }
  });

  async function start() {
    try {
      await Promise.all([loadSummary(), loadList()]);
      const m = /#image=(\d+)/.exec(location.hash);
      if (m) await openById(+m[1], null);
      document.body.dataset.ready = '1';
      performance.mark('dsprep-ready');  // the first page is drawn (benchmarks read it)
    } catch (e) {
      status(e.message, 'error');
    }
  }
  start();
})();
