// Small behaviours shared by all pages: remember where the language switch was pressed,
// ask before any form marked data-confirm is sent, tick a whole group at once, copy a secret,
// print from a [data-print] button, and complete a server-relative address with the address the
// browser used to reach the server.
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('[data-back]').forEach((el) => { el.value = location.pathname + location.search; });
  document.querySelectorAll('[data-absolute-url]').forEach((el) => { el.value = location.origin + el.getAttribute('value'); });
});
document.addEventListener('submit', (e) => {
  const msg = e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
}, true);
// a [data-check-all] box ticks every box of its [data-check-group], and follows them when they change
document.addEventListener('change', (e) => {
  const group = e.target.closest('[data-check-group]');
  if (!group) return;
  const all = group.querySelector('[data-check-all]');
  const boxes = group.querySelectorAll('input[type=checkbox]:not([data-check-all])');
  if (e.target === all) {
    boxes.forEach((b) => { b.checked = all.checked; });
  } else {
    all.checked = Array.from(boxes).every((b) => b.checked);
  }
});
document.addEventListener('click', (e) => {
  const button = e.target.closest('[data-copy]');
  if (!button) return;
  const field = document.querySelector(button.getAttribute('data-copy'));
  field.select();
  // the clipboard API needs a secure context; elsewhere the text stays selected for Ctrl+C
  if (navigator.clipboard) { navigator.clipboard.writeText(field.value).catch(() => {}); }
  button.textContent = button.getAttribute('data-copied');
});
// Durations on the live monitor ("serving for 03:12"), counted in the browser between updates.
setInterval(() => {
  document.querySelectorAll('[data-since]').forEach((el) => {
    const s = Math.max(0, Math.floor((Date.now() - Number(el.dataset.since)) / 1000));
    el.textContent = `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  });
}, 1000);
document.addEventListener('click', (e) => {
  if (e.target.closest('[data-print]')) window.print();
});
