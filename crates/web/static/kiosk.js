// The kiosk (评价器 on a tablet). It polls the device API for the window's state, shows the staff
// card and the rating buttons, and never loses a press: every press goes into a queue in
// localStorage first and leaves it only once the server has answered for it for good.
//
// Set-up: open /kiosk#<terminal token> once; the token moves to localStorage and out of the URL.
// Test hook: `window.__kepingOffline = true` makes every request fail as if the network were down.
(() => {
  'use strict';
  const TOKEN_KEY = 'keping.kiosk.token';
  const QUEUE_KEY = 'keping.kiosk.queue';
  // the last state seen, so that a kiosk started without network still shows its buttons
  const STATE_KEY = 'keping.kiosk.state';
  const POLL_MS = 2000;
  const RETRY_MS = 4000;
  const THANKS_MS = 4000;
  const REASONS_MS = 8000;
  const en = document.body.dataset.lang === 'en';
  const $ = (id) => document.getElementById(id);

  if (location.hash.length > 1) {
    localStorage.setItem(TOKEN_KEY, decodeURIComponent(location.hash.slice(1)));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const token = localStorage.getItem(TOKEN_KEY);

  // ------------------------------------------------------------ network

  function net(url, options) {
    if (window.__kepingOffline) return Promise.reject(new TypeError('offline (test hook)'));
    return fetch(url, Object.assign({ cache: 'no-store' }, options));
  }

  function api(path, bearer) {
    return net(path, { headers: { Authorization: 'Bearer ' + bearer } });
  }

  let online = true;
  function setOnline(value) {
    online = value;
    showStatus();
  }

  // ------------------------------------------------------------ the queue

  function queue() {
    try {
      return JSON.parse(localStorage.getItem(QUEUE_KEY)) || [];
    } catch (e) {
      return [];
    }
  }

  function saveQueue(items) {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(items));
    showStatus();
  }

  function changeItem(id, change) {
    const items = queue();
    const item = items.find((i) => i.press.idempotency_key === id);
    if (item) Object.assign(item, change(item));
    saveQueue(items);
  }

  // crypto.randomUUID needs a secure context; a tablet on plain http still has getRandomValues
  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  let flushing = false;
  // Uploads queued presses in order. 2xx, 409 and 422 (and any other 4xx) are the server's final
  // word; 429, 5xx and network failures keep the press for the next try. 401 keeps it too: the
  // token may come back (a re-registered tablet), and the press carries its own token.
  async function flush() {
    if (flushing) return;
    flushing = true;
    try {
      for (const item of queue()) {
        if (item.held) continue;
        let res;
        try {
          res = await net('/api/v1/device/presses', {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + item.token },
            body: JSON.stringify(Object.assign({}, item.press, { sent_at: new Date().toISOString() })),
          });
        } catch (e) {
          setOnline(false);
          break;
        }
        setOnline(true);
        if (res.status === 429 || res.status >= 500) break;
        if (res.status === 401) continue;
        saveQueue(queue().filter((i) => i.press.idempotency_key !== item.press.idempotency_key));
      }
    } finally {
      flushing = false;
    }
  }

  // a page closed during the reasons screen left its press held: that customer is gone
  saveQueue(queue().map((i) => Object.assign(i, { held: false })));

  // ------------------------------------------------------------ screens

  let screen = null;
  function show(name) {
    screen = name;
    document.querySelectorAll('.kiosk-screen').forEach((s) => {
      s.hidden = s.id !== 'screen-' + name;
    });
  }

  function showStatus() {
    const status = $('k-status');
    status.classList.toggle('offline', !online);
    $('k-status-text').textContent = online ? status.dataset.online : status.dataset.offline;
    const n = queue().length;
    $('queue-count').textContent = String(n);
    $('k-queue').hidden = n === 0;
  }

  function tick() {
    const d = new Date();
    $('k-clock').textContent = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  }

  // ------------------------------------------------------------ speech

  function speak(text) {
    if (!('speechSynthesis' in window)) return;
    try {
      const u = new SpeechSynthesisUtterance(text);
      u.lang = en ? 'en-US' : 'zh-CN';
      speechSynthesis.cancel();
      speechSynthesis.speak(u);
    } catch (e) {
      // no voice: the text on screen says it
    }
  }

  // ------------------------------------------------------------ the window's state

  let state = null;
  // the last state the server sent in this page's life: greetings are spoken on changes to it
  let live = null;
  // the prompt was answered here: stop asking until the server has moved on
  let answered = false;
  let optionsShown = '';
  let photoShown = '';

  function render(s, fromServer) {
    const previous = live;
    state = s;
    if (fromServer) live = s;
    $('k-org').textContent = s.org_name;
    $('k-window-name').textContent = s.window.name;
    $('k-window').textContent = s.window.name;
    $('k-business').textContent = s.business_type || '';
    $('k-fact-business').hidden = !s.business_type;
    $('k-staff').classList.toggle('empty', !s.staff);
    $('k-staff-name').textContent = s.staff ? s.staff.name : $('k-staff-name').dataset.none;
    $('k-employee-no').textContent = s.staff ? s.staff.employee_no : '';
    $('k-fact-no').hidden = !s.staff;
    showPhoto(s.staff);
    const options = JSON.stringify(s.options);
    if (options !== optionsShown) {
      optionsShown = options;
      drawOptions(s.options);
    }
    if (!s.prompt_open || s.service_id) answered = false;
    const prompting = s.prompt_open && !answered;
    document.body.classList.toggle('prompting', prompting);
    $('k-greeting').hidden = prompting;
    $('k-prompt').hidden = !prompting;
    if (previous && s.service_id && s.service_id !== previous.service_id) speak($('k-greeting').textContent);
    if (previous && prompting && !previous.prompt_open) speak($('k-prompt').textContent);
  }

  async function showPhoto(staff) {
    const key = staff ? `${staff.id}:${staff.has_photo}` : '';
    if (key === photoShown) return;
    photoShown = key;
    const img = $('k-photo');
    const initial = $('k-initial');
    initial.textContent = staff ? Array.from(staff.name)[0] || '' : '';
    if (!staff) initial.innerHTML = '<i class="bi bi-person"></i>';
    if (img.src) URL.revokeObjectURL(img.src);
    img.removeAttribute('src');
    img.hidden = true;
    initial.hidden = false;
    if (!staff || !staff.has_photo) return;
    try {
      const res = await api(`/api/v1/device/staff/${staff.id}/photo`, token);
      if (!res.ok) throw new Error(String(res.status));
      const blob = await res.blob();
      if (photoShown !== key) return;
      img.src = URL.createObjectURL(blob);
      img.hidden = false;
      initial.hidden = true;
    } catch (e) {
      photoShown = '';
    }
  }

  // faces and tones by polarity; the first positive option is the best one (非常满意)
  function drawOptions(options) {
    const box = $('k-options');
    box.textContent = '';
    box.dataset.count = String(options.length);
    let seenPositive = false;
    for (const o of options) {
      let tone = 'bad';
      let icon = 'bi-emoji-frown';
      if (o.polarity === 'positive') {
        tone = seenPositive ? 'good' : 'best';
        icon = seenPositive ? 'bi-emoji-smile' : 'bi-emoji-laughing';
        seenPositive = true;
      } else if (o.polarity === 'neutral') {
        tone = 'neutral';
        icon = 'bi-emoji-neutral';
      }
      const b = document.createElement('button');
      b.type = 'button';
      b.className = `kiosk-option tone-${tone}`;
      b.dataset.key = o.key;
      const i = document.createElement('i');
      i.className = `bi ${icon}`;
      const label = document.createElement('span');
      label.textContent = en && o.label_en ? o.label_en : o.label;
      b.append(i, label);
      b.addEventListener('click', () => press(o));
      box.append(b);
    }
  }

  let polling = false;
  async function poll() {
    if (polling) return;
    polling = true;
    try {
      const res = await api('/api/v1/device/state', token);
      setOnline(true);
      if (res.status === 401) {
        show('invalid');
      } else if (res.ok) {
        const s = await res.json();
        render(s, true);
        localStorage.setItem(STATE_KEY, JSON.stringify(s));
        if (screen === 'invalid') show('main');
      }
    } catch (e) {
      setOnline(false);
    } finally {
      polling = false;
    }
  }

  // ------------------------------------------------------------ a press

  let thanksTimer = null;
  function thank() {
    show('thanks');
    clearTimeout(thanksTimer);
    thanksTimer = setTimeout(() => show('main'), THANKS_MS);
    flush();
  }

  function press(option) {
    const item = {
      token,
      held: option.polarity === 'negative',
      press: { key: option.key, idempotency_key: uuid(), pressed_at: new Date().toISOString() },
    };
    saveQueue(queue().concat([item]));
    answered = true;
    document.body.classList.remove('prompting');
    if (item.held) {
      askReasons(item.press.idempotency_key);
    } else {
      thank();
    }
  }

  // After a negative press: what went wrong and a phone number, both optional. The press waits
  // (held) in the queue meanwhile, and goes with whatever was chosen when the screen closes.
  let reasonsTimer = null;
  let reasonsFor = null;
  let reasonChosen = null;

  function askReasons(id) {
    reasonsFor = id;
    reasonChosen = null;
    const box = $('k-reasons');
    box.textContent = '';
    for (const r of state ? state.negative_reasons : []) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'kiosk-reason';
      b.textContent = r;
      b.addEventListener('click', () => {
        reasonChosen = reasonChosen === r ? null : r;
        box.querySelectorAll('.kiosk-reason').forEach((x) => x.classList.toggle('chosen', x.textContent === reasonChosen));
      });
      box.append(b);
    }
    box.hidden = box.childElementCount === 0;
    $('k-phone').value = '';
    $('k-phone-error').hidden = true;
    show('reasons');
    restartReasonsTimer();
  }

  function restartReasonsTimer() {
    if (screen !== 'reasons') return;
    clearTimeout(reasonsTimer);
    reasonsTimer = setTimeout(() => finishReasons(true, true), REASONS_MS);
  }

  // the server's rule: digits, '-' and '+', at least 7 digits, at most 20 characters
  function phoneOk(p) {
    return /^[0-9+-]{1,20}$/.test(p) && p.replace(/[^0-9]/g, '').length >= 7;
  }

  function finishReasons(keepChoice, auto) {
    if (screen !== 'reasons') return;
    const phone = $('k-phone').value.trim();
    if (!auto && keepChoice && phone && !phoneOk(phone)) {
      $('k-phone-error').hidden = false;
      restartReasonsTimer();
      return;
    }
    clearTimeout(reasonsTimer);
    const extra = {};
    if (keepChoice && reasonChosen) extra.negative_reason = reasonChosen;
    if (keepChoice && phone && phoneOk(phone)) extra.phone = phone;
    changeItem(reasonsFor, (item) => ({ held: false, press: Object.assign(item.press, extra) }));
    thank();
  }

  $('k-skip').addEventListener('click', () => finishReasons(false, false));
  $('k-submit').addEventListener('click', () => finishReasons(true, false));
  $('screen-reasons').addEventListener('input', restartReasonsTimer);
  $('screen-reasons').addEventListener('click', restartReasonsTimer);

  // ------------------------------------------------------------ start

  $('k-staff-name').dataset.none = $('k-staff-name').textContent;
  tick();
  setInterval(tick, 10000);
  showStatus();
  if (!token) {
    show('setup');
    return;
  }
  try {
    const saved = JSON.parse(localStorage.getItem(STATE_KEY));
    if (saved) render(Object.assign(saved, { prompt_open: false, service_id: null }), false);
  } catch (e) {
    // nothing saved yet
  }
  show('main');
  poll();
  setInterval(poll, POLL_MS);
  flush();
  setInterval(flush, RETRY_MS);
  window.addEventListener('online', flush);
  // a kiosk screen should not go dark; browsers without the Wake Lock API just follow their settings
  if (navigator.wakeLock) navigator.wakeLock.request('screen').catch(() => {});
})();
