{
 "patcher": {
  "fileversion": 1,
  "appversion": {
   "major": 8,
   "minor": 6,
   "revision": 0,
   "architecture": "x64",
   "modernui": 1
  },
  "classnamespace": "box",
  "rect": [
   100.0,
   100.0,
   860.0,
   520.0
  ],
  "openinpresentation": 1,
  "default_fontsize": 10.0,
  "default_fontface": 0,
  "default_fontname": "Arial Bold",
  "gridonopen": 1,
  "gridsize": [
   8.0,
   8.0
  ],
  "gridsnaponopen": 1,
  "objectsnaponopen": 1,
  "statusbarvisible": 2,
  "toolbarvisible": 1,
  "description": "DARC Drums: drum accompaniment from the darc-bridge daemon",
  "digest": "",
  "tags": "",
  "style": "",
  "subpatcher_template": "",
  "assistshowspatchername": 0,
  "autosave": 0,
  "boxes": [
   {
    "box": {
     "id": "obj-title",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "outlettype": [],
     "patching_rect": [
      20,
      10,
      120,
      20
     ],
     "text": "DARC Drums",
     "presentation": 1,
     "presentation_rect": [
      4,
      2,
      120,
      18
     ],
     "fontface": 1
    }
   },
   {
    "box": {
     "id": "obj-thisdevice",
     "maxclass": "live.thisdevice",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "bang",
      "int",
      "int"
     ],
     "patching_rect": [
      20,
      40,
      85,
      20
     ]
    }
   },
   {
    "box": {
     "id": "obj-js",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      300,
      300,
      140,
      22
     ],
     "text": "js darc_drums.js",
     "varname": "darc_js"
    }
   },
   {
    "box": {
     "id": "obj-udpreceive",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      300,
      40,
      140,
      22
     ],
     "text": "udpreceive 9011 @defer 1",
     "varname": "osc_in"
    }
   },
   {
    "box": {
     "id": "obj-udpsend",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 0,
     "outlettype": [],
     "patching_rect": [
      300,
      360,
      140,
      22
     ],
     "text": "udpsend 127.0.0.1 9001",
     "varname": "osc_out"
    }
   },
   {
    "box": {
     "id": "obj-generate",
     "maxclass": "live.text",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      20,
      100,
      60,
      20
     ],
     "text": "Generate",
     "presentation": 1,
     "presentation_rect": [
      4,
      24,
      70,
      20
     ],
     "varname": "generate_button",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Generate drums",
       "parameter_shortname": "Generate",
       "parameter_type": 2,
       "parameter_enum": [
        "off",
        "on"
       ],
       "parameter_mmax": 1,
       "parameter_invisible": 2
      }
     },
     "mode": 0
    }
   },
   {
    "box": {
     "id": "obj-cancel",
     "maxclass": "live.text",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      100,
      100,
      60,
      20
     ],
     "text": "Cancel",
     "presentation": 1,
     "presentation_rect": [
      78,
      24,
      50,
      20
     ],
     "varname": "cancel_button",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Cancel generation",
       "parameter_shortname": "Cancel",
       "parameter_type": 2,
       "parameter_enum": [
        "off",
        "on"
       ],
       "parameter_mmax": 1,
       "parameter_invisible": 2
      }
     },
     "mode": 0
    }
   },
   {
    "box": {
     "id": "obj-pick",
     "maxclass": "live.text",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      180,
      100,
      60,
      20
     ],
     "text": "Pick",
     "presentation": 1,
     "presentation_rect": [
      178,
      92,
      40,
      16
     ],
     "varname": "pick_button",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Pick prompt clip",
       "parameter_shortname": "Pick",
       "parameter_type": 2,
       "parameter_enum": [
        "off",
        "on"
       ],
       "parameter_mmax": 1,
       "parameter_invisible": 2
      }
     },
     "mode": 0
    }
   },
   {
    "box": {
     "id": "obj-t-generate",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      20,
      130,
      30,
      22
     ],
     "text": "t b"
    }
   },
   {
    "box": {
     "id": "obj-msg-generate",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20,
      160,
      70,
      22
     ],
     "text": "generate"
    }
   },
   {
    "box": {
     "id": "obj-t-cancel",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      100,
      130,
      30,
      22
     ],
     "text": "t b"
    }
   },
   {
    "box": {
     "id": "obj-msg-cancel",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      100,
      160,
      70,
      22
     ],
     "text": "cancel"
    }
   },
   {
    "box": {
     "id": "obj-t-pick_prompt",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "bang"
     ],
     "patching_rect": [
      180,
      130,
      30,
      22
     ],
     "text": "t b"
    }
   },
   {
    "box": {
     "id": "obj-msg-pick_prompt",
     "maxclass": "message",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      180,
      160,
      70,
      22
     ],
     "text": "pick_prompt"
    }
   },
   {
    "box": {
     "id": "obj-temperature",
     "maxclass": "live.dial",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "float"
     ],
     "patching_rect": [
      20,
      200,
      44,
      48
     ],
     "presentation": 1,
     "presentation_rect": [
      134,
      2,
      44,
      48
     ],
     "varname": "temperature",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Temperature",
       "parameter_shortname": "Temp",
       "parameter_type": 0,
       "parameter_mmin": 0.0,
       "parameter_mmax": 5.0,
       "parameter_initial": [
        1.0
       ],
       "parameter_initial_enable": 1,
       "parameter_unitstyle": 1,
       "parameter_invisible": 0
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-rhythm",
     "maxclass": "live.dial",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      "float"
     ],
     "patching_rect": [
      80,
      200,
      44,
      48
     ],
     "presentation": 1,
     "presentation_rect": [
      180,
      2,
      44,
      48
     ],
     "varname": "rhythm_strength",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Rhythm strength",
       "parameter_shortname": "Rhythm",
       "parameter_type": 0,
       "parameter_mmin": 0.0,
       "parameter_mmax": 4.0,
       "parameter_initial": [
        1.0
       ],
       "parameter_initial_enable": 1,
       "parameter_unitstyle": 1,
       "parameter_invisible": 0
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-region-source",
     "maxclass": "live.menu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      460,
      100,
      100,
      15
     ],
     "presentation": 1,
     "presentation_rect": [
      4,
      50,
      96,
      15
     ],
     "varname": "region_source",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Region source",
       "parameter_shortname": "Region source",
       "parameter_type": 2,
       "parameter_enum": [
        "Selected clip",
        "Capture loop"
       ],
       "parameter_mmax": 1,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-prepend-region_source",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      460,
      130,
      120,
      22
     ],
     "text": "prepend region_source"
    }
   },
   {
    "box": {
     "id": "obj-prompt-source",
     "maxclass": "live.menu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      460,
      160,
      100,
      15
     ],
     "presentation": 1,
     "presentation_rect": [
      4,
      70,
      96,
      15
     ],
     "varname": "prompt_source",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Prompt source",
       "parameter_shortname": "Prompt source",
       "parameter_type": 2,
       "parameter_enum": [
        "File",
        "Clip",
        "Track"
       ],
       "parameter_mmax": 2,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-prepend-prompt_source",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      460,
      190,
      120,
      22
     ],
     "text": "prepend prompt_source"
    }
   },
   {
    "box": {
     "id": "obj-prompt-track",
     "maxclass": "live.menu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      460,
      220,
      100,
      15
     ],
     "presentation": 1,
     "presentation_rect": [
      104,
      92,
      72,
      16
     ],
     "varname": "prompt_track",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Prompt track",
       "parameter_shortname": "Prompt track",
       "parameter_type": 2,
       "parameter_enum": [
        "(none)"
       ],
       "parameter_mmax": 0,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-prepend-prompt_track",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      460,
      250,
      120,
      22
     ],
     "text": "prepend prompt_track"
    }
   },
   {
    "box": {
     "id": "obj-drop",
     "maxclass": "live.drop",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      620,
      100,
      120,
      40
     ],
     "presentation": 1,
     "presentation_rect": [
      104,
      50,
      120,
      38
     ],
     "varname": "prompt_drop",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Prompt file",
       "parameter_shortname": "Prompt",
       "parameter_type": 4,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-prepend-drop",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      620,
      150,
      120,
      22
     ],
     "text": "prepend prompt_file"
    }
   },
   {
    "box": {
     "id": "obj-status",
     "maxclass": "comment",
     "numinlets": 1,
     "numoutlets": 0,
     "outlettype": [],
     "patching_rect": [
      20,
      420,
      300,
      20
     ],
     "text": "Loading...",
     "presentation": 1,
     "presentation_rect": [
      4,
      150,
      220,
      18
     ],
     "varname": "status"
    }
   },
   {
    "box": {
     "id": "obj-led",
     "maxclass": "led",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      "int"
     ],
     "patching_rect": [
      340,
      420,
      20,
      20
     ],
     "presentation": 1,
     "presentation_rect": [
      210,
      26,
      16,
      16
     ],
     "varname": "connected"
    }
   },
   {
    "box": {
     "id": "obj-plugin",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 2,
     "outlettype": [
      "signal",
      "signal"
     ],
     "patching_rect": [
      620,
      300,
      60,
      22
     ],
     "text": "plugin~"
    }
   },
   {
    "box": {
     "id": "obj-plugout",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 0,
     "outlettype": [],
     "patching_rect": [
      620,
      380,
      60,
      22
     ],
     "text": "plugout~"
    }
   },
   {
    "box": {
     "id": "obj-sfrecord",
     "maxclass": "newobj",
     "numinlets": 2,
     "numoutlets": 1,
     "outlettype": [
      "signal"
     ],
     "patching_rect": [
      700,
      380,
      90,
      22
     ],
     "text": "sfrecord~ 2",
     "varname": "recorder"
    }
   },
   {
    "box": {
     "id": "obj-prompt-track-store",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      600,
      220,
      150,
      22
     ],
     "text": "pattr prompt_track_store",
     "varname": "prompt_track_store",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Prompt track store",
       "parameter_shortname": "prompt_track_store",
       "parameter_type": 3,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-kit-store",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      600,
      300,
      150,
      22
     ],
     "text": "pattr kit_store",
     "varname": "kit_store",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Kit store",
       "parameter_shortname": "kit_store",
       "parameter_type": 3,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-kit",
     "maxclass": "live.menu",
     "numinlets": 1,
     "numoutlets": 3,
     "outlettype": [
      "",
      "",
      ""
     ],
     "patching_rect": [
      460,
      300,
      100,
      15
     ],
     "presentation": 1,
     "presentation_rect": [
      4,
      130,
      100,
      16
     ],
     "varname": "kit",
     "parameter_enable": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Kit",
       "parameter_shortname": "Kit",
       "parameter_type": 2,
       "parameter_enum": [
        "(daemon default)"
       ],
       "parameter_mmax": 0,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-prepend-kit",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      460,
      330,
      120,
      22
     ],
     "text": "prepend kit"
    }
   },
   {
    "box": {
     "id": "obj-midi-out",
     "maxclass": "live.text",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      20,
      380,
      60,
      20
     ],
     "text": "MIDI",
     "texton": "MIDI",
     "presentation": 1,
     "presentation_rect": [
      108,
      130,
      52,
      16
     ],
     "varname": "midi_out",
     "parameter_enable": 1,
     "mode": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "MIDI track",
       "parameter_shortname": "MIDI",
       "parameter_type": 2,
       "parameter_enum": [
        "off",
        "on"
       ],
       "parameter_mmax": 1,
       "parameter_initial": [
        1
       ],
       "parameter_initial_enable": 1,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-midi-out-prepend",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      20,
      410,
      120,
      22
     ],
     "text": "prepend midi_out"
    }
   },
   {
    "box": {
     "id": "obj-split-stems",
     "maxclass": "live.text",
     "numinlets": 1,
     "numoutlets": 2,
     "outlettype": [
      "",
      ""
     ],
     "patching_rect": [
      100,
      380,
      60,
      20
     ],
     "text": "Split",
     "texton": "Split",
     "presentation": 1,
     "presentation_rect": [
      164,
      130,
      52,
      16
     ],
     "varname": "split_stems",
     "parameter_enable": 1,
     "mode": 1,
     "saved_attribute_attributes": {
      "valueof": {
       "parameter_longname": "Split stems",
       "parameter_shortname": "Split",
       "parameter_type": 2,
       "parameter_enum": [
        "off",
        "on"
       ],
       "parameter_mmax": 1,
       "parameter_initial": [
        0
       ],
       "parameter_initial_enable": 1,
       "parameter_invisible": 1
      }
     }
    }
   },
   {
    "box": {
     "id": "obj-split-stems-prepend",
     "maxclass": "newobj",
     "numinlets": 1,
     "numoutlets": 1,
     "outlettype": [
      ""
     ],
     "patching_rect": [
      100,
      410,
      120,
      22
     ],
     "text": "prepend split_stems"
    }
   }
  ],
  "lines": [
   {
    "patchline": {
     "source": [
      "obj-generate",
      0
     ],
     "destination": [
      "obj-t-generate",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-t-generate",
      0
     ],
     "destination": [
      "obj-msg-generate",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-msg-generate",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-cancel",
      0
     ],
     "destination": [
      "obj-t-cancel",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-t-cancel",
      0
     ],
     "destination": [
      "obj-msg-cancel",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-msg-cancel",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-pick",
      0
     ],
     "destination": [
      "obj-t-pick_prompt",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-t-pick_prompt",
      0
     ],
     "destination": [
      "obj-msg-pick_prompt",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-msg-pick_prompt",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-region-source",
      0
     ],
     "destination": [
      "obj-prepend-region_source",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prepend-region_source",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prompt-source",
      0
     ],
     "destination": [
      "obj-prepend-prompt_source",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prepend-prompt_source",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prompt-track",
      0
     ],
     "destination": [
      "obj-prepend-prompt_track",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prepend-prompt_track",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-drop",
      0
     ],
     "destination": [
      "obj-prepend-drop",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prepend-drop",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-plugin",
      0
     ],
     "destination": [
      "obj-plugout",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-plugin",
      1
     ],
     "destination": [
      "obj-plugout",
      1
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-plugin",
      0
     ],
     "destination": [
      "obj-sfrecord",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-plugin",
      1
     ],
     "destination": [
      "obj-sfrecord",
      1
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-thisdevice",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-udpreceive",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-js",
      0
     ],
     "destination": [
      "obj-udpsend",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-js",
      1
     ],
     "destination": [
      "obj-sfrecord",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-kit",
      0
     ],
     "destination": [
      "obj-prepend-kit",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-prepend-kit",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-midi-out",
      0
     ],
     "destination": [
      "obj-midi-out-prepend",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-midi-out-prepend",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-split-stems",
      0
     ],
     "destination": [
      "obj-split-stems-prepend",
      0
     ]
    }
   },
   {
    "patchline": {
     "source": [
      "obj-split-stems-prepend",
      0
     ],
     "destination": [
      "obj-js",
      0
     ]
    }
   }
  ],
  "parameters": {
   "obj-generate": [
    "Generate drums",
    "Generate",
    0
   ],
   "obj-cancel": [
    "Cancel generation",
    "Cancel",
    0
   ],
   "obj-pick": [
    "Pick prompt clip",
    "Pick",
    0
   ],
   "obj-temperature": [
    "Temperature",
    "Temp",
    0
   ],
   "obj-rhythm": [
    "Rhythm strength",
    "Rhythm",
    0
   ],
   "obj-region-source": [
    "Region source",
    "Region source",
    0
   ],
   "obj-prompt-source": [
    "Prompt source",
    "Prompt source",
    0
   ],
   "obj-prompt-track": [
    "Prompt track",
    "Prompt track",
    0
   ],
   "obj-drop": [
    "Prompt file",
    "Prompt",
    0
   ],
   "inherited_shortname": 1,
   "obj-prompt-track-store": [
    "Prompt track store",
    "prompt_track_store",
    0
   ],
   "obj-kit-store": [
    "Kit store",
    "kit_store",
    0
   ],
   "obj-kit": [
    "Kit",
    "Kit",
    0
   ],
   "obj-midi-out": [
    "MIDI track",
    "MIDI",
    0
   ],
   "obj-split-stems": [
    "Split stems",
    "Split",
    0
   ]
  },
  "dependency_cache": [
   {
    "name": "darc_drums.js",
    "patcherrelativepath": ".",
    "type": "TEXT",
    "implicit": 1
   }
  ],
  "latency": 0,
  "is_mpe": 0,
  "external_mpe_tuning_enabled": 0,
  "minimum_live_version": "12.0.5",
  "minimum_max_version": "8.1",
  "platform_compatibility": 0
 }
}
