// Small behaviours shared by all pages: remember where the language switch was pressed,
// and ask before any form marked data-confirm is sent.
document.addEventListener('DOMContentLoaded', () => {
  document.querySelectorAll('[data-back]').forEach((el) => { el.value = location.pathname + location.search; });
});
document.addEventListener('submit', (e) => {
  const msg = e.target.getAttribute('data-confirm');
  if (msg && !window.confirm(msg)) { e.preventDefault(); }
}, true);
