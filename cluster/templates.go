package cluster

// Templates reach nodes content-addressed: a node asks for the list of
// templates and each one's manifest (every file with its SHA-256), fetches
// only the blobs it does not hold yet, verifies each, and installs a
// template only once its whole set of files is there.
//
//	From(node, "tpl.list")      request: {} → TemplateList
//	From(node, "tpl.manifest")  request: TemplateRef → Manifest
//	From(node, "tpl.blob")      request: BlobRequest → the bytes; header
//	                            "Universe-Size" (the blob's size) or
//	                            "Universe-Error"
//	To(node, "tpl.sync")        the master asks the node to sync now

// TemplateRef names one template.
type TemplateRef struct {
	Group string `json:"group"`
	Name  string `json:"name"`
}

// TemplateList answers tpl.list.
type TemplateList struct {
	Templates []TemplateRef `json:"templates"`
	Error     string        `json:"error,omitempty"`
}

// Manifest is a template's files and folders.
type Manifest struct {
	TemplateRef
	Files []ManifestFile `json:"files"`
	Error string         `json:"error,omitempty"`
}

// ManifestFile is one entry of a manifest; SHA256 is empty for folders.
type ManifestFile struct {
	Path   string `json:"path"`
	Dir    bool   `json:"dir,omitempty"`
	Mode   uint32 `json:"mode"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256,omitempty"`
}

// BlobRequest asks for a chunk of the blob with that digest.
type BlobRequest struct {
	SHA256 string `json:"sha256"`
	Offset int64  `json:"offset"`
}

// BlobChunk bounds the bytes of one tpl.blob answer (under NATS's 1 MiB).
const BlobChunk = 512 << 10

// Headers of tpl.blob answers.
const (
	HeaderSize  = "Universe-Size"
	HeaderError = "Universe-Error"
)
