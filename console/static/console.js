// Switchback console: the confirmation dialog and live updates. The pages
// work without this file (the dialog is then a page of its own); with it,
// a control opens the dialog in place and open pages follow changes.
(function () {
  'use strict';

  var dialog = document.getElementById('confirm-dialog');
  var opener = null; // {key, value} of the control that opened the dialog

  function findOpener() {
    if (!opener) return null;
    var form = document.querySelector('form[data-key="' + opener.key + '"]');
    if (!form) return null;
    return form.querySelector('button[value="' + opener.value + '"]') || form.querySelector('button');
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (!dialog || !form.matches('form[data-confirm]')) return;
    e.preventDefault();
    var button = e.submitter || form.querySelector('button');
    opener = { key: form.dataset.key, value: button ? button.value : '' };
    var url = new URL(form.getAttribute('action'), location.href);
    url.search = new URLSearchParams(new FormData(form, e.submitter)).toString();
    fetch(url, { credentials: 'same-origin' }).then(function (resp) {
      return resp.text();
    }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, 'text/html');
      var content = doc.getElementById('confirm-content') || doc.getElementById('main');
      dialog.replaceChildren.apply(dialog, Array.prototype.slice.call(content.childNodes));
      if (!dialog.querySelector('#confirm-title')) {
        var h = dialog.querySelector('h1, h2');
        if (h) h.id = 'confirm-title';
      }
      if (!dialog.querySelector('[data-cancel]')) {
        var close = document.createElement('button');
        close.type = 'button';
        close.textContent = 'Cancel';
        close.setAttribute('data-cancel', '');
        dialog.appendChild(close);
      }
      dialog.showModal();
      var first = dialog.querySelector('#reason') || dialog.querySelector('[data-cancel]');
      if (first) first.focus();
    }).catch(function (err) {
      window.alert('Could not open the dialog: ' + err);
    });
  });

  document.addEventListener('click', function (e) {
    var cancel = e.target.closest('[data-cancel]');
    if (!cancel) return;
    e.preventDefault();
    if (dialog && dialog.open) {
      dialog.close();
    } else if (cancel.form) {
      cancel.form.submit();
    }
  });

  if (dialog) {
    dialog.addEventListener('close', function () {
      dialog.replaceChildren();
      var back = findOpener();
      if (back) back.focus();
    });
  }

  // Live updates: the server says "changed"; fetch this page again and swap
  // every [data-live] part, except one the user is typing in.
  var stream = document.body.dataset.liveStream;
  if (!stream || !window.EventSource) return;
  var busy = false, again = false;

  function editing(region) {
    var active = document.activeElement;
    if (active && active !== document.body && region.contains(active) && active.matches('input, select, textarea')) return true;
    var inputs = region.querySelectorAll('input[type="number"], input[type="text"]');
    for (var i = 0; i < inputs.length; i++) {
      if (inputs[i].value !== inputs[i].defaultValue) return true;
    }
    var boxes = region.querySelectorAll('input[type="checkbox"]');
    for (var j = 0; j < boxes.length; j++) {
      if (boxes[j].checked !== boxes[j].defaultChecked) return true;
    }
    return false;
  }

  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: 'same-origin' }).then(function (resp) {
      if (!resp.ok) return null;
      return resp.text();
    }).then(function (html) {
      if (!html) return;
      var doc = new DOMParser().parseFromString(html, 'text/html');
      doc.querySelectorAll('[data-live]').forEach(function (fresh) {
        var old = document.getElementById(fresh.id);
        if (!old || editing(old)) return;
        var had = old.contains(document.activeElement) ? document.activeElement : null;
        var form = had && had.closest('form[data-key]');
        var href = had && had.getAttribute('href');
        var value = had && had.value;
        old.replaceWith(document.adoptNode(fresh));
        // Keep the keyboard where it was: the same control in the new part.
        var target = null;
        if (form) {
          var f = fresh.querySelector('form[data-key="' + form.dataset.key + '"]');
          target = f && (f.querySelector('button[value="' + value + '"]') || f.querySelector('button'));
        } else if (href) {
          target = fresh.querySelector('a[href="' + href + '"]');
        }
        if (target) target.focus();
      });
      document.body.dataset.refreshed = String(Date.now());
    }).catch(function () {}).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }

  var live = '/ui/live?deployment=' + encodeURIComponent(stream);
  if (document.body.dataset.liveRelease) live += '&release=' + encodeURIComponent(document.body.dataset.liveRelease);
  var es = new EventSource(live);
  es.addEventListener('changed', refresh);
})();
