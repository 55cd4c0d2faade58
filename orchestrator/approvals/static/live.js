// The inbox's live pages (the queue and a request). Served by the inbox as written: no
// build step, nothing fetched from elsewhere. Without it every page still works: the
// Refresh link, and where nothing typed could be lost a <noscript> reload. With it, the
// page listens to the stream its status line names (data-events: /inbox/queue/events or
// /inbox/requests/<id>/events) and, when that says the page changed, fetches the page
// again and swaps its content in place, keeping what the person typed or opened and the
// keyboard focus.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  if (!status || !window.EventSource || !window.fetch || !window.DOMParser) {
    return;
  }
  var root = document.documentElement;
  var fetching = false;
  var again = false;

  // A field or <details> is the same one after the swap when its form, name and kind match.
  function keyOf(el) {
    var form = el.form ? el.form.getAttribute("action") + "|" : "";
    return el.tagName + "|" + form + (el.getAttribute("name") || el.getAttribute("href") ||
      (el.querySelector && el.querySelector("summary") ?
        el.querySelector("summary").textContent : ""));
  }

  function kept(main) {
    var state = {};
    var fields = main.querySelectorAll("textarea, input:not([type=hidden]), select");
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].value !== fields[i].defaultValue || fields[i].tagName === "SELECT") {
        state[keyOf(fields[i])] = fields[i].value;
      }
    }
    var opened = main.querySelectorAll("details");
    for (var j = 0; j < opened.length; j++) {
      state[keyOf(opened[j])] = opened[j].open;
    }
    return state;
  }

  function restore(main, state, focused) {
    var all = main.querySelectorAll(
      "textarea, input:not([type=hidden]), select, details, a[href], button");
    for (var i = 0; i < all.length; i++) {
      var key = keyOf(all[i]);
      if (!(key in state)) {
        // nothing kept
      } else if (all[i].tagName === "DETAILS") {
        all[i].open = state[key];
      } else {
        all[i].value = state[key];
      }
      if (focused && key === focused) {
        all[i].focus();
        focused = null;
      }
    }
  }

  function swap(doc) {
    var main = document.querySelector("main");
    var fresh = doc.querySelector("main");
    if (!main || !fresh) {
      return;
    }
    var state = kept(main);
    var active = document.activeElement;
    var focused = active && main.contains(active) && active !== main ? keyOf(active) : null;
    main.innerHTML = fresh.innerHTML;
    document.title = doc.title;
    restore(main, state, focused);
    status = document.getElementById("live-status");
    root.setAttribute("data-live-updates",
      String(Number(root.getAttribute("data-live-updates") || 0) + 1));
  }

  function refresh() {
    if (fetching) {
      again = true;
      return;
    }
    fetching = true;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      redirect: "manual",
    })
      .then(function (answer) {
        if (answer.status !== 200) {
          throw new Error("the page answered " + answer.status);
        }
        return answer.text();
      })
      .then(function (html) {
        swap(new DOMParser().parseFromString(html, "text/html"));
      })
      .catch(function () {
        // Signed out or offline: the page as it is stays; the Refresh link still works.
      })
      .then(function () {
        fetching = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  }

  var events = status.getAttribute("data-events") || "";
  if (events.charAt(0) !== "/" || events.charAt(1) === "/") {
    return; // only a stream of this inbox
  }
  var source = new EventSource(events);
  source.addEventListener("queue", refresh);
  source.addEventListener("moved", refresh);
  source.addEventListener("end", function () {
    source.close();
  });
  root.setAttribute("data-live", "on");
})();
