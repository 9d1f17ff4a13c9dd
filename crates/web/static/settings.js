// 评价设置: move, add and remove rating option rows (the form sends the rows in the order shown),
// and switch to another org as soon as it is chosen.
document.addEventListener('click', (e) => {
  const button = e.target.closest('[data-option-action]');
  if (!button) return;
  const list = document.querySelector('[data-option-list]');
  const rows = () => list.querySelectorAll('[data-option-row]');
  const row = button.closest('[data-option-row]');
  switch (button.getAttribute('data-option-action')) {
    case 'up':
      if (row.previousElementSibling) list.insertBefore(row, row.previousElementSibling);
      button.focus();
      break;
    case 'down':
      if (row.nextElementSibling) list.insertBefore(row.nextElementSibling, row);
      button.focus();
      break;
    case 'remove':
      // the last row stays as the pattern for new ones; the server asks for two at least
      if (rows().length > 1) row.remove();
      break;
    case 'add': {
      const copy = rows()[0].cloneNode(true);
      copy.classList.remove('border-danger');
      copy.querySelectorAll('input').forEach((i) => { i.value = ''; i.classList.remove('is-invalid'); });
      copy.querySelectorAll('select').forEach((s) => { s.selectedIndex = 0; s.classList.remove('is-invalid'); });
      copy.querySelectorAll('[data-row-error]').forEach((m) => m.remove());
      list.appendChild(copy);
      copy.querySelector('input').focus();
      break;
    }
  }
});
document.addEventListener('change', (e) => {
  if (e.target.matches('[data-autosubmit]')) e.target.form.submit();
});
