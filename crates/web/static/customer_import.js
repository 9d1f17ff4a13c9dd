// The import page: sends the file with fetch and shows a progress bar while the server reads,
// checks and writes it, polling how far the import has got under a token chosen here; the
// answer (the result page) then takes this page's place. Without script the form posts as usual.
document.addEventListener('DOMContentLoaded', () => {
  const form = document.getElementById('import-form');
  if (!form || !window.fetch || !window.FormData || !window.DOMParser) return;
  form.addEventListener('submit', async (e) => {
    if (e.defaultPrevented) return;
    e.preventDefault();
    const token = Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
    form.querySelector('[name=progress]').value = token;
    const box = document.getElementById('import-progress');
    const bar = document.getElementById('import-bar');
    const label = document.getElementById('import-phase');
    const count = document.getElementById('import-count');
    // reading the file is the first tenth, checking the next three, writing the rest
    const share = { reading: [0, 10], checking: [10, 30], writing: [40, 60], done: [100, 0] };
    const show = (p) => {
      const [from, span] = share[p.phase] || share.reading;
      const pct = Math.round(from + (p.rows_total ? span * Math.min(1, p.rows_done / p.rows_total) : 0));
      bar.style.width = `${pct}%`;
      bar.parentElement.setAttribute('aria-valuenow', String(pct));
      label.textContent = box.dataset[p.phase] || '';
      count.textContent = p.rows_total ? `${p.rows_done.toLocaleString()} / ${p.rows_total.toLocaleString()}` : '';
    };
    box.classList.remove('d-none');
    form.querySelector('button').disabled = true;
    show({ phase: 'reading', rows_done: 0, rows_total: 0 });
    let running = true;
    (async () => {
      while (running) {
        await new Promise((r) => setTimeout(r, 300));
        try {
          const r = await fetch(form.dataset.progress + token, { cache: 'no-store', credentials: 'same-origin' });
          if (r.ok && running) show(await r.json());
        } catch (_) { /* the next poll may get through */ }
      }
    })();
    let html;
    try {
      const r = await fetch(form.action, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
      html = await r.text();
    } catch (_) {
      running = false;
      form.submit();
      return;
    }
    running = false;
    show({ phase: 'done', rows_done: 0, rows_total: 0 });
    const page = new DOMParser().parseFromString(html, 'text/html');
    document.title = page.title;
    document.body.replaceWith(page.body);
    if (window.htmx) window.htmx.process(document.body);
  });
});
